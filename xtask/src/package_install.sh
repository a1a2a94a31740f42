# Installs the hyperwatch packages into a throwaway root and checks what the
# install did; run by xtask/src/package.rs as
#   unshare --mount --propagation private sh -eu -c SCRIPT NAME AGENT.deb WATCHDOG.deb
# The root is an overlay of / whose writes go to a tmpfs in this private
# mount namespace: dpkg, adduser and deb-systemd-helper run for real, and
# nothing of it reaches the machine.
agent_deb=$1
watchdog_deb=$2
top=$(mktemp -d)
r=$top/root
trap 'umount -R "$r" 2>/dev/null; umount "$top" 2>/dev/null; rmdir "$top"' EXIT
mount -t tmpfs hyperwatch-throwaway "$top"
mkdir "$top/upper" "$top/work" "$r"
mount -t overlay overlay -o "lowerdir=/,upperdir=$top/upper,workdir=$top/work" "$r"
mount --bind /proc "$r/proc"
mount --bind /dev "$r/dev"
mount -t tmpfs tmpfs "$r/tmp"
# No systemd runs in the throwaway root: the maintainer scripts see no
# /run/systemd/system and only enable the units.
mount -t tmpfs tmpfs "$r/run"
cp "$agent_deb" "$r/tmp/agent.deb"
cp "$watchdog_deb" "$r/tmp/watchdog.deb"

failed=0
check() {
    what=$1
    shift
    if "$@" >/dev/null 2>&1; then
        echo "ok: $what"
    else
        echo "FAILED: $what ($*)"
        failed=1
    fi
}
in_root() { chroot "$r" "$@"; }
owner_mode() { [ "$(in_root stat -c '%U:%G %a' "$1")" = "$2" ]; }

in_root dpkg -i /tmp/agent.deb /tmp/watchdog.deb
check "both packages installed" in_root dpkg-query -W -f '${db:Status-Abbrev}' hyperwatch-agent hyperwatch-watchdog
check "user hyperwatch created by the postinst" in_root getent passwd hyperwatch
check "agent.toml root:root 640" owner_mode /etc/hyperwatch/agent.toml "root:root 640"
check "watchdog.toml root:hyperwatch 640" owner_mode /etc/hyperwatch/watchdog.toml "root:hyperwatch 640"
check "certs directory root:hyperwatch 750" owner_mode /etc/hyperwatch/certs "root:hyperwatch 750"
check "agent unit enabled" test -L "$r/etc/systemd/system/multi-user.target.wants/hyperwatch-agent.service"
check "watchdog unit enabled" test -L "$r/etc/systemd/system/multi-user.target.wants/hyperwatch-watchdog.service"
check "installed units verify (binaries in place)" in_root systemd-analyze verify --man=no \
    /lib/systemd/system/hyperwatch-agent.service /lib/systemd/system/hyperwatch-watchdog.service
check "installed agent checks its config" in_root /usr/bin/hyperwatch-agent --check-config --config /etc/hyperwatch/agent.toml
check "installed watchdog checks its config as user hyperwatch" \
    in_root setpriv --reuid hyperwatch --regid hyperwatch --init-groups \
    /usr/bin/hyperwatch serve --check-config --config /etc/hyperwatch/watchdog.toml

in_root dpkg --purge hyperwatch-agent hyperwatch-watchdog
check "purge removes the binaries" test ! -e "$r/usr/bin/hyperwatch-agent" -a ! -e "$r/usr/bin/hyperwatch"
check "purge removes the configuration files" test ! -e "$r/etc/hyperwatch/agent.toml" -a ! -e "$r/etc/hyperwatch/watchdog.toml"
check "purge disables the units" test ! -e "$r/etc/systemd/system/multi-user.target.wants/hyperwatch-agent.service"

exit $failed
