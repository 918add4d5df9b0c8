"""Generate the gRPC stubs from protocol/*.proto as part of every build (wheel or editable).

The generated modules land in protocol/_pb/ and are never committed or edited by hand.
"""

from __future__ import annotations

import glob
import os

from setuptools import setup


def generate_stubs() -> None:
    from grpc_tools import protoc  # build requirement, see pyproject.toml

    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "protocol", "_pb")
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "__init__.py"), "w").close()
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    for proto in sorted(glob.glob(os.path.join(here, "protocol", "*.proto"))):
        args = [
            "protoc",
            f"-I{os.path.join(here, 'protocol')}",
            f"-I{include}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            proto,
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {proto}")
    # grpc_tools writes absolute imports ("import coordination_pb2"); make them package-relative.
    for path in glob.glob(os.path.join(out, "*_grpc.py")):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text = text.replace("import coordination_pb2 as", "from protocol._pb import coordination_pb2 as")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


# Every setuptools entry point (egg_info, editable, wheel, sdist) runs this file, so the stubs
# exist before setuptools looks for the protocol._pb package.
generate_stubs()
setup()
