#!/usr/bin/env python3
"""Checks that the crate's `rust-version` is real without an old toolchain.

This machine has one Rust toolchain, so CI cannot build with the stated minimum.
Two checks stand in for it:
  1. clippy's `incompatible_msrv` lint (on by default, -D warnings in CI) fails on
     any standard-library API newer than `rust-version` that our code uses;
  2. this script fails if any dependency the crate builds with (all features,
     dev-dependencies excluded) declares a `rust-version` newer than ours.
"""
import json
import subprocess
import sys


def version_tuple(v):
    return tuple(int(x) for x in v.split(".")[:3]) + (0,) * (3 - len(v.split(".")))


host = next(
    line.split(": ", 1)[1]
    for line in subprocess.check_output(["rustc", "-vV"], text=True).splitlines()
    if line.startswith("host: ")
)
# The host platform only: a wasm-only dependency does not build here anyway.
meta = json.loads(
    subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked",
         "--filter-platform", host]
    )
)
packages = {p["id"]: p for p in meta["packages"]}
root = meta["resolve"]["root"]
ours = packages[root]["rust_version"]
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}

# Walk normal and build dependencies from the root (not dev-dependencies).
seen, stack = set(), [root]
while stack:
    node = nodes[stack.pop()]
    for dep in node["deps"]:
        kinds = {k["kind"] for k in dep["dep_kinds"]}
        if node["id"] == root and kinds <= {"dev"}:
            continue
        if dep["pkg"] not in seen:
            seen.add(dep["pkg"])
            stack.append(dep["pkg"])

too_new = []
for pkg_id in sorted(seen, key=lambda i: packages[i]["name"]):
    pkg = packages[pkg_id]
    rv = pkg.get("rust_version")
    if rv and version_tuple(rv) > version_tuple(ours):
        too_new.append(f"{pkg['name']} {pkg['version']} needs Rust {rv}")

print(f"rust-version {ours}: {len(seen)} dependencies checked")
if too_new:
    print("dependencies newer than our rust-version:\n  " + "\n  ".join(too_new))
    sys.exit(1)
