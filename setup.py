"""Build hook: the wheel carries the page's npm files (onnxruntime-web, Pyodide), so a pip user needs no npm.

Everything else about the package is declared in pyproject.toml. The files come from the checkout's
node_modules when `npm ci` has run there, else from the npm registry tarballs that package-lock.json pins,
each checked against the lock's sha512 integrity (qwen35web/web/vendor.py).
"""

import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithVendoredPage(build_py):
    def run(self) -> None:
        # setuptools reuses build/lib between builds: a module deleted from the source would ship again.
        shutil.rmtree(Path(self.build_lib) / "qwen35web", ignore_errors=True)
        super().run()
        if self.editable_mode:  # an editable install reads node_modules of the checkout directly
            return
        sys.path.insert(0, str(ROOT))
        from qwen35web.web.vendor import fill_vendor_dir

        fill_vendor_dir(Path(self.build_lib) / "qwen35web" / "web" / "_vendor", ROOT)


setup(cmdclass={"build_py": BuildWithVendoredPage})
