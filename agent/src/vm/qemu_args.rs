//! What a qemu-system command line says about its VM: name (`-name`),
//! vCPUs (`-smp`), memory (`-m`), UUID (`-uuid`) and accelerator.

/// QEMU's default RAM when `-m` is absent (x86 and most machines): 128 MiB.
pub const QEMU_DEFAULT_MEMORY_BYTES: u64 = 128 << 20;

/// The VM facts found on one command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuArgs {
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub vcpus: u32,
    pub memory_bytes: u64,
    /// "kvm", "tcg", ... as asked for; QEMU's default is tcg.
    pub accelerator: String,
}

/// Parses argv (argv[0] included or not).
pub fn parse(argv: &[String]) -> QemuArgs {
    let mut out = QemuArgs {
        name: None,
        uuid: None,
        vcpus: 1,
        memory_bytes: QEMU_DEFAULT_MEMORY_BYTES,
        accelerator: "tcg".to_owned(),
    };
    let mut args = argv.iter();
    while let Some(arg) = args.next() {
        let Some(option) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            continue;
        };
        match option {
            "enable-kvm" => out.accelerator = "kvm".into(),
            "name" | "smp" | "m" | "uuid" | "accel" | "machine" | "M" => {
                let Some(value) = args.next() else { break };
                apply(&mut out, option, value);
            }
            _ => {}
        }
    }
    out
}

fn apply(out: &mut QemuArgs, option: &str, value: &str) {
    let opts = split_opts(value);
    match option {
        "name" => {
            out.name = implied_or(&opts, "guest").filter(|n| !n.is_empty());
        }
        "uuid" => out.uuid = Some(value.to_owned()),
        "smp" => out.vcpus = smp_vcpus(&opts),
        "m" => {
            if let Some(bytes) = implied_or(&opts, "size").and_then(|s| parse_size(&s)) {
                out.memory_bytes = bytes;
            }
        }
        "accel" => {
            if let Some(a) = implied_or(&opts, "accel") {
                out.accelerator = a;
            }
        }
        _ => {
            // -machine TYPE,accel=kvm:tcg: the first one QEMU can use.
            if let Some(a) = lookup(&opts, "accel") {
                out.accelerator = a.split(':').next().unwrap_or(&a).to_owned();
            }
        }
    }
}

/// Splits `a=b,c=d` at unescaped commas (QEMU writes a literal comma as
/// ",,") into (key, value) pairs; a bare item has an empty key.
fn split_opts(value: &str) -> Vec<(String, String)> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                current.push(',');
            } else {
                items.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    items.push(current);
    items
        .into_iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (String::new(), item),
        })
        .collect()
}

fn lookup(opts: &[(String, String)], key: &str) -> Option<String> {
    opts.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// The value of `key`, or of the first bare item (QEMU's implied key).
fn implied_or(opts: &[(String, String)], key: &str) -> Option<String> {
    lookup(opts, key).or_else(|| {
        opts.first()
            .filter(|(k, _)| k.is_empty())
            .map(|(_, v)| v.clone())
    })
}

/// `-smp [cpus=]n,sockets=,dies=,clusters=,cores=,threads=`: cpus when
/// given, else the product of the topology, else 1.
fn smp_vcpus(opts: &[(String, String)]) -> u32 {
    if let Some(n) = implied_or(opts, "cpus").and_then(|v| v.parse().ok()) {
        return n;
    }
    let topology = ["sockets", "dies", "clusters", "cores", "threads"];
    let parts: Vec<u32> = topology
        .iter()
        .filter_map(|k| lookup(opts, k)?.parse().ok())
        .collect();
    if parts.is_empty() {
        1
    } else {
        parts.iter().product()
    }
}

/// A QEMU size: a number with an optional k/M/G/T suffix (binary units);
/// a bare number means MiB.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit() && *c != '.')
    {
        Some((i, _)) => (&text[..i], &text[i..]),
        None => (text, "M"),
    };
    let shift = match unit.to_ascii_uppercase().trim_end_matches('B') {
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    let value: f64 = digits.parse().ok()?;
    Some((value * (1u64 << shift) as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn a_plain_command_line() {
        let a = parse(&argv(
            "/usr/bin/qemu-system-x86_64 -name web1 -smp 4 -m 2048 -enable-kvm -nographic",
        ));
        assert_eq!(a.name.as_deref(), Some("web1"));
        assert_eq!(a.vcpus, 4);
        assert_eq!(a.memory_bytes, 2048 << 20);
        assert_eq!(a.accelerator, "kvm");
    }

    #[test]
    fn a_libvirt_command_line() {
        let a = parse(&argv(
            "/usr/bin/qemu-system-x86_64 -name guest=db,,primary,debug-threads=on -S \
             -machine pc-q35-7.2,usb=off,dump-guest-core=off,memory-backend=pc.ram \
             -accel kvm -m size=4194304k -smp 2,sockets=2,dies=1,cores=1,threads=1 \
             -uuid 5b2a3f4e-9f8c-4c1e-8a43-0c3f1d2e4b5a",
        ));
        assert_eq!(a.name.as_deref(), Some("db,primary"));
        assert_eq!(a.vcpus, 2);
        assert_eq!(a.memory_bytes, 4 << 30);
        assert_eq!(a.accelerator, "kvm");
        assert_eq!(
            a.uuid.as_deref(),
            Some("5b2a3f4e-9f8c-4c1e-8a43-0c3f1d2e4b5a")
        );
    }

    #[test]
    fn defaults_topology_and_sizes() {
        let a = parse(&argv("qemu-system-x86_64 -nographic"));
        assert_eq!((a.name, a.vcpus, a.memory_bytes), (None, 1, 128 << 20));
        assert_eq!(a.accelerator, "tcg");
        let b = parse(&argv(
            "qemu-system-aarch64 -smp sockets=2,cores=4,threads=2 -m 1G -machine virt,accel=kvm:tcg",
        ));
        assert_eq!(b.vcpus, 16);
        assert_eq!(b.memory_bytes, 1 << 30);
        assert_eq!(b.accelerator, "kvm");
        assert_eq!(
            parse(&argv("q -m 512M,slots=2,maxmem=4G")).memory_bytes,
            512 << 20
        );
        assert_eq!(parse(&argv("q --smp cpus=3,maxcpus=8")).vcpus, 3);
    }
}
