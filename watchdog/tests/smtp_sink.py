"""SMTP sink for hyperwatch's email tests and benchmark.

Runs aiosmtpd's SMTP server (Debian's python3-aiosmtpd, the real protocol
implementation) on a loopback port, with STARTTLS required, implicit TLS,
or plain SMTP, and optional AUTH. `python3 -m aiosmtpd` cannot take an
authenticator, so this script builds the same server with one.

Every accepted message is written to DIR as one file: a JSON line with the
envelope (mail_from, rcpt_tos, tls, login, accepted_at) and the message as
Python's email package parses it (parsed: subject, message_id, headers of
hyperwatch, content type, decoded text and HTML parts), then the message
exactly as received. Files appear atomically (written, then renamed).
"READY" is printed once the port listens.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import ssl
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        transport = server.transport
        tls = session.ssl is not None or (
            transport is not None and transport.get_extra_info("ssl_object") is not None
        )
        login = None
        if isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode()
        raw = envelope.original_content or envelope.content
        meta = {
            "parsed": parse(raw),
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": tls,
            "login": login,
            "accepted_at": time.time(),
        }
        name = os.path.join(self.directory, "%d-%06d.eml" % (time.time_ns(), self.count))
        with open(name + ".tmp", "wb") as f:
            f.write(json.dumps(meta).encode() + b"\n")
            f.write(raw)
        os.rename(name + ".tmp", name)
        return "250 2.0.0 Ok: queued as sink-%d" % self.count


def parse(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)

    def part(kind):
        body = msg.get_body(preferencelist=(kind,))
        return body.get_content() if body is not None else None

    return {
        "subject": str(msg["subject"]),
        "from": str(msg["from"]),
        "to": str(msg["to"]),
        "message_id": str(msg["message-id"]),
        "idempotency_key": str(msg["x-hyperwatch-idempotency-key"]),
        "incident": str(msg["x-hyperwatch-incident"]),
        "content_type": msg.get_content_type(),
        "text": part("plain"),
        "html": part("html"),
    }


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, auth_data=auth_data if ok else None)

    return check


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--listen", required=True, help="HOST:PORT")
    p.add_argument("--mode", choices=["starttls", "implicit", "plain"], default="starttls")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--dir", required=True)
    p.add_argument("--user")
    p.add_argument("--password")
    args = p.parse_args()

    host, _, port = args.listen.rpartition(":")
    context = None
    if args.mode != "plain":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    handler = Sink(args.dir)
    auth = authenticator(args.user, args.password) if args.user else None

    def factory():
        return SMTP(
            handler,
            hostname="sink.test",
            tls_context=context if args.mode == "starttls" else None,
            require_starttls=args.mode == "starttls",
            authenticator=auth,
            auth_required=auth is not None,
            # With implicit TLS the session is encrypted from the start, but
            # aiosmtpd only knows about STARTTLS.
            auth_require_tls=args.mode == "starttls",
        )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(
            factory,
            host=host,
            port=int(port),
            ssl=context if args.mode == "implicit" else None,
            reuse_address=True,
        )
    )
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    print("READY", flush=True)
    loop.run_forever()
    server.close()


if __name__ == "__main__":
    main()
