"""A real archive for the tests: Debian's Orthanc on loopback, free ports, a private JSON
configuration in a temporary folder (its own storage and index), the DICOMweb plugin, a login
for the REST/DICOMweb side, and our AE (OCTVIEWER) known for C-FIND/C-GET/C-MOVE/C-STORE.

Without Orthanc the tests that need it skip with the install line as the reason.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))
INSTALL = "sudo apt-get install -y --no-install-recommends orthanc orthanc-dicomweb"
USER, PASSWORD = "octviewer", "test-only-secret"
CALLED_AE = "ORTHANCTEST"
OUR_AE = "OCTVIEWER"


def dicomweb_plugin() -> Path | None:
    for d in PLUGIN_DIRS:
        for p in sorted(d.glob("libOrthancDicomWeb.so*")):
            return p
    return None


def missing_reason() -> str | None:
    """Why Orthanc cannot run here (with the install line), or None."""
    if not Path(ORTHANC).is_file():
        return f"Orthanc is not installed: {INSTALL}"
    if dicomweb_plugin() is None:
        return f"the Orthanc DICOMweb plugin is not installed: {INSTALL}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Orthanc:
    folder: Path
    http_port: int
    dicom_port: int
    move_port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"dicomweb:{self.url}/dicom-web"

    @property
    def dimse(self) -> str:
        return f"dimse:{CALLED_AE}@127.0.0.1:{self.dicom_port}"

    def config(self) -> dict:
        return {
            "Name": "octviewer-tests",
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": CALLED_AE,
            "DicomCheckCalledAet": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD},
            "Plugins": [str(dicomweb_plugin())],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
            "DicomModalities": {
                "octviewer": {
                    "AET": OUR_AE,
                    "Host": "127.0.0.1",
                    "Port": self.move_port,
                    "AllowEcho": True,
                    "AllowFind": True,
                    "AllowGet": True,
                    "AllowMove": True,
                    "AllowStore": True,
                }
            },
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": False,
            "DicomCheckModalityHost": True,
            "UnknownSopClassAccepted": False,
            "SaveJobs": False,
            "StableAge": 1,
            "HttpTimeout": 30,
            "DicomScuTimeout": 10,
        }

    def start(self) -> None:
        cfg = self.folder / "orthanc.json"
        cfg.write_text(json.dumps(self.config(), indent=1))
        log = (self.folder / "orthanc.log").open("wb")
        self.process = subprocess.Popen([ORTHANC, str(cfg)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"Orthanc exited: {(self.folder / 'orthanc.log').read_text()[-2000:]}"
                )
            with contextlib.suppress(requests.RequestException):
                if self.rest("GET", "/system").ok:
                    return
            time.sleep(0.2)
        raise RuntimeError("Orthanc did not answer within 30 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def rest(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, self.url + path, auth=(USER, PASSWORD), timeout=30, **kw)

    def upload(self, path: Path) -> dict:
        r = self.rest("POST", "/instances", data=path.read_bytes())
        r.raise_for_status()
        return r.json()


def start_orthanc(folder: Path) -> Orthanc:
    server = Orthanc(folder, free_port(), free_port(), free_port())
    server.start()
    return server
