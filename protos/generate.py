"""Generate the Python stubs of the genaudit API: ``python protos/generate.py [OUT_ROOT]``.

The .proto files live in ``protos/genaudit/v1`` (package genaudit.v1, the path buf sees) and are
compiled under the virtual path ``genaudit/api/v1``, so the stubs land in ``OUT_ROOT/genaudit/api/v1``
and import each other as ``genaudit.api.v1``. OUT_ROOT defaults to ``services`` (the committed stubs);
the drift test generates into a temporary folder and compares.
"""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path

from grpc_tools import protoc

PROTO_DIR = Path(__file__).resolve().parent / "genaudit" / "v1"
VIRTUAL_DIR = "genaudit/api/v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_root: Path) -> list[Path]:
    """Compile every .proto of the package into ``out_root``; returns the generated files."""
    out_root.mkdir(parents=True, exist_ok=True)
    protos = sorted(PROTO_DIR.glob("*.proto"))
    well_known = str(files("grpc_tools") / "_proto")
    args = [
        "protoc", f"-I{VIRTUAL_DIR}={PROTO_DIR}", f"-I{well_known}",
        f"--python_out={out_root}", f"--pyi_out={out_root}", f"--grpc_python_out={out_root}",
        *map(str, protos),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    out_dir = out_root / VIRTUAL_DIR
    return sorted(p for p in out_dir.iterdir() if p.name.endswith(GENERATED_SUFFIXES))


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "services"
    for path in generate(root):
        print(path)
