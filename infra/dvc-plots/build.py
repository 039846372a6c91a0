"""Build the offline HTML template for `dvc plots show` (DVC's own page loads vega
from a CDN). Installs pinned vega, vega-lite and vega-embed from the npm registry into
infra/dvc-plots/vendor/ (git-ignored) and inlines their minified builds into
infra/dvc-plots/vendor/offline.html. The template has no `{scripts}` placeholder, so DVC adds no CDN tag.

    python infra/dvc-plots/build.py           # once, at set-up time (needs npm)
    dvc plots show --html-template infra/dvc-plots/vendor/offline.html -o reports/plots
"""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENDOR = HERE / "vendor"
# The majors DVC's vega-lite specs are written for (dvc_render: vega 5, vega-lite 5, vega-embed 6).
PACKAGES = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}
BUILDS = {"vega": "build/vega.min.js", "vega-lite": "build/vega-lite.min.js", "vega-embed": "build/vega-embed.min.js"}
MARKER = "<!-- VEGA_SCRIPTS -->"
DVC_PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")
log = logging.getLogger("dvc-plots")


def install() -> None:
    VENDOR.mkdir(exist_ok=True)
    specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
    subprocess.run(["npm", "install", "--prefix", str(VENDOR), "--no-save", "--no-audit", "--no-fund",
                    "--ignore-scripts", *specs], check=True)


def build() -> Path:
    template = (HERE / "template.in.html").read_text(encoding="utf-8")
    scripts = []
    for name, build_path in BUILDS.items():
        js = (VENDOR / "node_modules" / name / build_path).read_text(encoding="utf-8")
        if any(p in js for p in DVC_PLACEHOLDERS):
            raise RuntimeError(f"{name}: its build contains a DVC template placeholder")
        # an inline script ends at the first "</script"; escape any inside the library text
        js = js.replace("</script", "<\\/script")
        scripts.append(f"<script>/* {name}@{PACKAGES[name]} */\n{js}\n</script>")
    out = VENDOR / "offline.html"
    out.write_text(template.replace(MARKER, "\n".join(scripts)), encoding="utf-8")
    log.info("wrote %s (%d kB)", out, out.stat().st_size // 1024)
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if "--no-install" not in sys.argv:
        install()
    build()
