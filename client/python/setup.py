"""Builds the accelsel package. The gRPC stubs are generated here, at build time, from the repository's proto tree
with protoc and grpc_python_plugin (Debian: protobuf-compiler, protobuf-compiler-grpc), so they always match the
server they were built beside and need no generated code checked in. So are the descriptors of the google.rpc error
details the server sends (accelsel/rpc_details.desc, read by accelsel.client)."""
import os
import re
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
PROTO_DIR = os.environ.get("ACCELSEL_PROTO_DIR", os.path.join(REPO, "proto"))
PROTOS = ["accelsel/v1/accelsel.proto"]
# Not generated as google/rpc/*_pb2 modules: those paths belong to googleapis-common-protos (grpcio-status and the
# Google Cloud libraries need it), whose files they would overwrite, and whose fuller google.rpc messages would clash
# with these in protobuf's default pool. A descriptor set, loaded into a pool of the package's own, clashes with
# nothing.
RPC_PROTOS = ["google/rpc/status.proto", "google/rpc/error_details.proto"]
RPC_DESCRIPTORS = "rpc_details.desc"


def project_version():
    """The version of the C++ project (top CMakeLists.txt project(... VERSION x.y.z)), so both clients agree."""
    try:
        with open(os.path.join(REPO, "CMakeLists.txt"), encoding="utf-8") as f:
            m = re.search(r"project\(\s*accelsel\s+VERSION\s+([0-9][0-9.]*)", f.read())
            if m:
                return m.group(1)
    except OSError:
        pass
    return "0.0.0"


def need(tool, package):
    path = shutil.which(tool)
    if not path:
        raise SystemExit("accelsel: %s not found; install Debian's %s (apt-get install %s)" % (tool, package, package))
    return path


class BuildPyWithStubs(build_py):
    def run(self):
        super().run()
        protoc = need("protoc", "protobuf-compiler")
        plugin = need("grpc_python_plugin", "protobuf-compiler-grpc")
        for proto in PROTOS + RPC_PROTOS:
            if not os.path.exists(os.path.join(PROTO_DIR, proto)):
                raise SystemExit("accelsel: %s not found under %s (set ACCELSEL_PROTO_DIR)" % (proto, PROTO_DIR))
        subprocess.run([protoc, "-I", PROTO_DIR, "--python_out=" + self.build_lib,
                        "--grpc_python_out=" + self.build_lib, "--plugin=protoc-gen-grpc_python=" + plugin] + PROTOS,
                       check=True)
        subprocess.run([protoc, "-I", PROTO_DIR, "--include_imports",
                        "--descriptor_set_out=" + os.path.join(self.build_lib, "accelsel", RPC_DESCRIPTORS)] + RPC_PROTOS,
                       check=True)
        # The generated modules import each other as accelsel.v1.*: make accelsel/v1 a regular package.
        v1 = os.path.join(self.build_lib, "accelsel", "v1")
        with open(os.path.join(v1, "__init__.py"), "w", encoding="utf-8") as f:
            f.write('"""Generated from proto/accelsel/v1/accelsel.proto at build time."""\n')


setup(version=project_version(), cmdclass={"build_py": BuildPyWithStubs})
