"""Known-vulnerable packages in the project's environment, by pip-audit (PyPI's advisories).

Fails when a pinned package, or anything installed with it, has a known vulnerability. Says
plainly how many packages could not be checked (an offline machine cannot reach the
vulnerability service), where pip-audit alone would print "No known vulnerabilities found".
"""

from __future__ import annotations

import json
import subprocess
import sys

AUDIT = ["pip-audit", "--local", "--format", "json", "--progress-spinner", "off"]


def main() -> int:
    run = subprocess.run(AUDIT, capture_output=True, text=True, check=False)
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        print(run.stdout, run.stderr, sep="\n", file=sys.stderr)
        return 2
    packages = report["dependencies"]
    skipped = [p for p in packages if "skip_reason" in p]
    vulnerable = [p for p in packages if p.get("vulns")]
    for package in vulnerable:
        for vuln in package["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
            print(f"VULNERABLE {package['name']} {package['version']}: {vuln['id']} "
                  f"(fixed in {fixed})")
    checked = len(packages) - len(skipped)
    print(f"pip-audit: {checked} of {len(packages)} installed packages checked, "
          f"{len(vulnerable)} with known vulnerabilities.")
    if skipped:
        print(f"NOT CHECKED: {len(skipped)} packages ({skipped[0]['skip_reason']}); "
              "run `make audit` where PyPI's vulnerability data can be reached.")
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
