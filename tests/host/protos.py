"""The FunctionRpc message classes for the host stand-in, compiled from ``function_rpc.proto``.

``load_protos(workdir)`` runs ``grpc_tools.protoc`` (the grpcio-tools package) on the .proto
beside this module into ``workdir``, imports the generated module and returns a namespace with
every message class by name — the ``protos`` object the worker library expects from its caller
(it builds ``protos.StatusResult(...)``, ``protos.RpcHttp(...)``, ``protos.BindingInfo.out``, …).
Nothing generated is kept in the repository.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

__all__ = ["PROTO", "load_protos"]

PROTO = Path(__file__).with_name("function_rpc.proto")
_MODULE = "function_rpc_pb2"


def _compile(workdir: Path) -> Path:
    from grpc_tools import protoc
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"     # google/protobuf/*.proto
    args = ["protoc", f"-I{PROTO.parent}", f"-I{include}", f"--python_out={workdir}", str(PROTO)]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc could not compile {PROTO.name}")
    return workdir / f"{_MODULE}.py"


def load_protos(workdir: Path) -> SimpleNamespace:
    """Compile and import the messages; a namespace of message classes (and Timestamp)."""
    from google.protobuf.timestamp_pb2 import Timestamp

    path = _compile(Path(workdir))
    spec = importlib.util.spec_from_file_location(_MODULE, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE] = module
    spec.loader.exec_module(module)
    names = {name: getattr(module, name) for name in module.DESCRIPTOR.message_types_by_name}
    return SimpleNamespace(**names, Timestamp=Timestamp, module=module)
