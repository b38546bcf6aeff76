#!/usr/bin/env python3
"""Checks the locked dependency graph against supply-chain.toml: licenses, banned crates,
and crates that must appear in one version only. Exits 1 on any violation."""

import collections
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

root = Path(__file__).resolve().parent.parent
policy = tomllib.loads((root / "supply-chain.toml").read_text())
allowed = set(policy["allowed-licenses"])
banned = policy["banned"]
single = set(policy["single-version"]["crates"])

metadata = json.loads(
    subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout
)
packages = [p for p in metadata["packages"] if p.get("source")]  # registry crates only


def satisfiable(expression: str) -> bool:
    """Evaluates an SPDX expression (OR, AND, WITH, parentheses; '/' as OR)."""
    text = expression.replace("/", " OR ")
    text = re.sub(r"\bWITH\s+[\w.-]+", "", text)
    tokens = re.findall(r"\(|\)|[\w.+-]+", text)
    python = []
    for token in tokens:
        if token in ("(", ")"):
            python.append(token)
        elif token == "OR":
            python.append(" or ")
        elif token == "AND":
            python.append(" and ")
        else:
            python.append(str(token in allowed))
    try:
        return bool(eval("".join(python), {"__builtins__": {}}))  # only True/False/and/or
    except SyntaxError:
        return False


problems = []
for package in packages:
    license = package.get("license")
    if not license:
        problems.append(f"{package['name']} {package['version']}: no license expression")
    elif not satisfiable(license):
        problems.append(f"{package['name']} {package['version']}: license {license!r} not allowed")
    if package["name"] in banned:
        problems.append(f"{package['name']} is banned: {banned[package['name']]}")

versions = collections.defaultdict(set)
for package in packages:
    versions[package["name"]].add(package["version"])
for name, found in sorted(versions.items()):
    if len(found) > 1:
        line = f"{name}: {len(found)} versions ({', '.join(sorted(found))})"
        if name in single:
            problems.append(line + " — must be one")
        else:
            print(f"warning: duplicate {line}")

print(f"supply chain: {len(packages)} registry crates checked")
if problems:
    print("\n".join(f"error: {p}" for p in problems))
    sys.exit(1)
