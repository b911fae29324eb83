"""Checks that the API is documented where its readers look: every service, RPC, message, field, enum and enum value
of proto/accelsel/v1/accelsel.proto carries a comment (so generated code and schema tools show it), every RPC has a
row in the status code table of docs/API.md, and every JSON example of docs/API.md labelled with a message type
(```json accelsel.v1.Foo) parses as that message under the proto3 JSON mapping.
Run by tests/deploy_check.sh with /usr/bin/python3 (Debian python3-protobuf) and protoc.

Usage: check_api_doc.py [SOURCE_DIR [TMP_DIR]]   (defaults: this checkout, a fresh temporary folder)
"""
import os
import re
import subprocess
import sys
import tempfile

PROTO = os.path.join("accelsel", "v1", "accelsel.proto")

# Field numbers of descriptor.proto, the steps of a SourceCodeInfo.Location path.
FILE_MESSAGE, FILE_ENUM, FILE_SERVICE = 4, 5, 6
MESSAGE_FIELD, MESSAGE_NESTED, MESSAGE_ENUM, MESSAGE_ONEOF = 2, 3, 4, 8
ENUM_VALUE = 2
SERVICE_METHOD = 2


def has_words(comment):
    """A comment counts when it says something: at least two letters."""
    return len(re.findall(r"[A-Za-z]", comment or "")) >= 2


def check_comments(fd):
    """One line per element of the file descriptor `fd` (with source info) that has no leading or trailing comment."""
    comments = {}
    for loc in fd.source_code_info.location:
        text = (loc.leading_comments or "") + (loc.trailing_comments or "")
        comments[tuple(loc.path)] = text
    failures = []

    def need(path, what):
        if not has_words(comments.get(tuple(path))):
            failures.append(f"{what}: no comment in the proto")

    def enum(e, path, name):
        need(path, f"enum {name}")
        for i, v in enumerate(e.value):
            need(path + [ENUM_VALUE, i], f"enum value {name}.{v.name}")

    def message(m, path, name):
        if m.options.map_entry:  # the synthetic key/value message of a map field; the field itself is checked
            return
        need(path, f"message {name}")
        for i, f in enumerate(m.field):
            need(path + [MESSAGE_FIELD, i], f"field {name}.{f.name}")
        for i, o in enumerate(m.oneof_decl):
            members = [f for f in m.field if f.HasField("oneof_index") and f.oneof_index == i]
            if members and all(f.proto3_optional for f in members):
                continue  # the synthetic oneof of a proto3 `optional` field
            need(path + [MESSAGE_ONEOF, i], f"oneof {name}.{o.name}")
        for i, n in enumerate(m.nested_type):
            message(n, path + [MESSAGE_NESTED, i], f"{name}.{n.name}")
        for i, e in enumerate(m.enum_type):
            enum(e, path + [MESSAGE_ENUM, i], f"{name}.{e.name}")

    for i, m in enumerate(fd.message_type):
        message(m, [FILE_MESSAGE, i], m.name)
    for i, e in enumerate(fd.enum_type):
        enum(e, [FILE_ENUM, i], e.name)
    for i, s in enumerate(fd.service):
        need([FILE_SERVICE, i], f"service {s.name}")
        for j, rpc in enumerate(s.method):
            need([FILE_SERVICE, i, SERVICE_METHOD, j], f"RPC {s.name}.{rpc.name}")
    return failures


def main():
    src = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    tmp = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="accelsel-api-doc.")
    out = os.path.join(tmp, "api_doc_py")
    os.makedirs(out, exist_ok=True)
    proto_dir = os.path.join(src, "proto")
    descriptor_set = os.path.join(out, "accelsel.desc")
    subprocess.run(["protoc", "-I", proto_dir, "--python_out=" + out, "--include_source_info",
                    "--descriptor_set_out=" + descriptor_set, os.path.join(proto_dir, PROTO)], check=True)
    sys.path.insert(0, out)
    from google.protobuf import descriptor_pb2, json_format
    from accelsel.v1 import accelsel_pb2 as pb

    files = descriptor_pb2.FileDescriptorSet()
    with open(descriptor_set, "rb") as f:
        files.ParseFromString(f.read())
    failures = []
    for fd in files.file:
        failures += check_comments(fd)

    doc = open(os.path.join(src, "docs", "API.md"), encoding="utf-8").read()
    status_section = re.search(r"^## Status codes\s*$(.*?)(?=^## |\Z)", doc, re.M | re.S)
    status_text = status_section.group(1) if status_section else ""
    if not status_section:
        failures.append("docs/API.md: no '## Status codes' section")
    for svc in pb.DESCRIPTOR.services_by_name.values():
        for method in svc.methods:
            if f"| `{method.name}` |" not in status_text:
                failures.append(f"RPC {svc.name}.{method.name}: no row in the status code table of docs/API.md")

    examples = re.findall(r"^```json (accelsel\.v1\.[A-Za-z]+)\n(.*?)^```", doc, re.M | re.S)
    if not examples:
        failures.append("docs/API.md: no labelled JSON examples found")
    for type_name, body in examples:
        cls = getattr(pb, type_name.split(".")[-1], None)
        if cls is None:
            failures.append(f"example labelled {type_name}: no such message")
            continue
        try:
            json_format.Parse(body, cls())
        except json_format.ParseError as err:
            failures.append(f"example {type_name} does not parse: {err}")

    for f in failures:
        print(f"  api-doc: {f}")
    print(f"api-doc: proto comments, status code rows and {len(examples)} JSON examples checked, "
          f"{len(failures)} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
