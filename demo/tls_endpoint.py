"""An HTTPS endpoint on loopback whose self-signed certificate expires in 3 days.

The blackbox exporter probes it, so ssl_cert_expiry_days reads about 3 and
the catalog's ssl_certificate_expiry watcher (below 7 days) has a real case.
A new certificate is made at every start with the ``openssl`` command.

Run: ``python -m demo.tls_endpoint --port 8443 --cert-dir var/demo/tls``.
"""

import argparse
import logging
import shutil
import signal
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CERTIFICATE_DAYS = 3


def make_certificate(cert_dir: Path, days: int = CERTIFICATE_DAYS) -> tuple[Path, Path]:
    """Write a new self-signed certificate and key for 127.0.0.1; return both paths."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FileNotFoundError("openssl is not installed: apt-get install -y openssl")
    cert_dir.mkdir(parents=True, exist_ok=True)
    certificate, key = cert_dir / "endpoint.crt", cert_dir / "endpoint.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            str(days),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
    )
    return certificate, key


class HealthHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # The probe every 2 s would fill the log with identical lines.
        pass


def serve(port: int, cert_dir: Path) -> None:
    """Serve HTTPS on 127.0.0.1:``port`` until SIGTERM or SIGINT."""
    certificate, key = make_certificate(cert_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    server = ThreadingHTTPServer(("127.0.0.1", port), HealthHandler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info(
        "TLS endpoint on https://127.0.0.1:%s, certificate %s expires in %s days",
        port,
        certificate,
        CERTIFICATE_DAYS,
    )
    server.serve_forever()
    server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument(
        "--cert-dir", type=Path, required=True, help="folder for the certificate"
    )
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    serve(arguments.port, arguments.cert_dir)


if __name__ == "__main__":
    main()
