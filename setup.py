"""Build hook: ship the default INT8 calibration images in the wheel.

Their one source in the repository is the top-level calib_data/ folder (with make_sets.py, the
recipe that made them, and README.md, their licenses). Package data must live inside a package,
so build_py copies the images and README.md into the built package as exporter/assets/calib/,
where exporter/int8/calibration.py looks first. Nothing is copied in the source tree, so the two
can never drift apart in git. Editable installs and checkouts read calib_data/ directly.
Everything else is configured in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CALIB_SOURCE = Path(__file__).resolve().parent / "calib_data"
CALIB_TARGET = ("exporter", "assets", "calib")
SHIPPED = (".jpg", ".jpeg", ".png", ".md")


class BuildPyWithCalibration(build_py):
    """build_py, plus calib_data/'s images copied to exporter/assets/calib/ in the build."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads calib_data/ in place
        files = sorted(f for f in CALIB_SOURCE.iterdir() if f.suffix.lower() in SHIPPED) if CALIB_SOURCE.is_dir() else []
        if not any(f.suffix.lower() != ".md" for f in files):
            raise SystemExit(f"edgeport build: no calibration images in {CALIB_SOURCE}; the wheel would lack "
                             "the default INT8 calibration set (build from a full checkout or sdist).")
        target = Path(self.build_lib, *CALIB_TARGET)
        self.mkpath(str(target))
        for f in files:
            self.copy_file(str(f), str(target / f.name), preserve_mode=False)


setup(cmdclass={"build_py": BuildPyWithCalibration})
