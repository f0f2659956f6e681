"""The committed stubs in sluice_plugin/_proto must be what scripts/proto.sh
generates from plugins/proto/sluice_plugin.proto: edit the .proto, run
`make proto`, commit both."""

import os
import re
import tempfile

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PROTO_DIR = os.path.join(ROOT, "plugins", "proto")
STUBS = os.path.join(ROOT, "plugins", "python", "src", "sluice_plugin", "_proto")
FILES = ["sluice_plugin_pb2.py", "sluice_plugin_pb2.pyi", "sluice_plugin_pb2_grpc.py"]


def pinned_version():
    with open(os.path.join(ROOT, "scripts", "proto.sh")) as f:
        m = re.search(r"^GRPCIO_TOOLS=(\S+)$", f.read(), re.M)
    assert m, "scripts/proto.sh pins no GRPCIO_TOOLS"
    return m.group(1)


def unavailable(why):
    msg = (f"!!! STUB DRIFT NOT CHECKED: {why}. scripts/deps.sh installs grpcio-tools=={pinned_version()} "
           "into .cache/python; run the tests with that interpreter.")
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def test_committed_stubs_match_the_proto():
    try:
        import grpc_tools
        from grpc_tools import protoc
        from importlib.metadata import version
    except ImportError:
        unavailable("grpcio-tools is not installed")
    want = pinned_version()
    got = version("grpcio-tools")
    if got != want:
        unavailable(f"grpcio-tools {got} is installed, scripts/proto.sh pins {want}")
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    with tempfile.TemporaryDirectory() as out:
        rc = protoc.main([
            "grpc_tools.protoc",
            f"--proto_path=sluice_plugin/_proto={PROTO_DIR}",
            f"--proto_path={include}",
            f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}",
            "sluice_plugin/_proto/sluice_plugin.proto",
        ])
        assert rc == 0, "protoc failed"
        for name in FILES:
            with open(os.path.join(out, "sluice_plugin", "_proto", name), "rb") as f:
                fresh = f.read()
            with open(os.path.join(STUBS, name), "rb") as f:
                committed = f.read()
            assert committed == fresh, (
                f"plugins/python/src/sluice_plugin/_proto/{name} is stale: run `make proto` and commit the result")
