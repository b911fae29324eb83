"""Checks docs/API.md against proto/accelsel/v1/accelsel.proto: every service, RPC, message, field, enum and enum
value of the proto is documented (a heading per message/enum, a table row per field/value), and every JSON example
labelled with a message type (```json accelsel.v1.Foo) parses as that message under the proto3 JSON mapping.
Run by tests/deploy_check.sh with /usr/bin/python3 (Debian python3-protobuf) and protoc.

Usage: check_api_doc.py SOURCE_DIR TMP_DIR
"""
import os
import re
import subprocess
import sys


def main():
    src, tmp = sys.argv[1], sys.argv[2]
    out = os.path.join(tmp, "api_doc_py")
    os.makedirs(out, exist_ok=True)
    subprocess.run(["protoc", "-I", os.path.join(src, "proto"), "--python_out=" + out,
                    os.path.join(src, "proto", "accelsel", "v1", "accelsel.proto")], check=True)
    sys.path.insert(0, out)
    from google.protobuf import json_format
    from accelsel.v1 import accelsel_pb2 as pb

    doc = open(os.path.join(src, "docs", "API.md"), encoding="utf-8").read()
    headings = set(re.findall(r"^#{2,4} (\S+)\s*$", doc, re.M))
    failures = []

    def section(title):
        """Text from the heading `title` to the next heading of any level."""
        m = re.search(r"^#{2,4} " + re.escape(title) + r"\s*$(.*?)(?=^#{1,4} |\Z)", doc, re.M | re.S)
        return m.group(1) if m else ""

    def rows(text):
        return set(re.findall(r"^\| `([A-Za-z0-9_]+)` \|", text, re.M))

    fd = pb.DESCRIPTOR
    for svc in fd.services_by_name.values():
        if svc.name not in headings:
            failures.append(f"service {svc.name}: no heading")
        documented = rows(section(svc.name))
        for method in svc.methods:
            if method.name not in documented:
                failures.append(f"RPC {svc.name}.{method.name}: no row in its service table")
            if f"`{method.name}` |" not in section("Status codes"):
                failures.append(f"RPC {method.name}: no row in the status code table")

    def check_enum(enum, title):
        if title not in headings:
            failures.append(f"enum {title}: no heading")
            return
        documented = rows(section(title))
        for value in enum.values:
            if value.name not in documented:
                failures.append(f"enum {title}: value {value.name} not documented")

    for enum in fd.enum_types_by_name.values():
        check_enum(enum, enum.name)
    for msg in fd.message_types_by_name.values():
        if msg.GetOptions().map_entry:
            continue
        if msg.name not in headings:
            failures.append(f"message {msg.name}: no heading")
            continue
        text = section(msg.name)
        documented = rows(text)
        if not msg.fields and "No fields." not in text:
            failures.append(f"message {msg.name}: has no fields but does not say so")
        for field in msg.fields:
            if field.name not in documented:
                failures.append(f"message {msg.name}: field {field.name} not documented")
        for nested in msg.enum_types:
            check_enum(nested, f"{msg.name}.{nested.name}")

    examples = re.findall(r"^```json (accelsel\.v1\.[A-Za-z]+)\n(.*?)^```", doc, re.M | re.S)
    if not examples:
        failures.append("no labelled JSON examples found")
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
    print(f"api-doc: {len(examples)} JSON examples parsed, {len(failures)} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
