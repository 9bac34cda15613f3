"""Packaging for abrunnerd (the runner) and abserver (the reference job server).

The supported Debian packaging is ``debian/`` (dh + pybuild); this file also serves
pip installs and stdeb (settings in ``stdeb.cfg``).
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

VERSION = re.search(r'__version__ = "([^"]+)"', Path("abrunnerd/__init__.py").read_text()).group(1)

setup(
    name="abrunnerd",
    version=VERSION,
    description="Train AcousticBrainz dataset classifiers on the dataset owner's machine",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    author="abrunnerd developers",
    license="GPL-3+",
    python_requires=">=3.6",  # abrunnerd/; abserver/ needs 3.11 (its extra's Flask/SQLAlchemy do too)
    packages=find_packages(include=["abrunnerd", "abrunnerd.*", "abserver", "abserver.*"]),
    package_data={"abserver": ["openapi.json", "migrations/*.sql"],
                  "abserver.web": ["templates/*.html", "static/*"]},
    install_requires=[
        # The oldest versions tested (tools/compat-venv bionic: Ubuntu 18.04's).
        "numpy>=1.13.3",
        "scipy>=0.19.1",
        "scikit-learn>=0.19.1,<1.11",  # 1.11 removes SVC(probability=True)
        "requests>=2.18.4",
        "PyYAML>=3.12",
    ],
    extras_require={
        "daemon": ["python-daemon>=2.1.2", "systemd-python>=234", "dbus-python>=1.2"],
        "server": ["Flask>=2.2", "SQLAlchemy>=1.4", "psycopg2>=2.8", "gunicorn>=20", "Flask-WTF>=1.0",
                   "matplotlib>=3.5"],
    },
    entry_points={
        "console_scripts": [
            "abrunnerd=abrunnerd.daemon:main",
            "abrunnerctl=abrunnerd.ctl:main",
            "abserver=abserver.cli:main",
        ]
    },
)
