"""`pip install .` (no clone to fall back on) gives a package that loads the bundled digits.

Builds the sdist and, from it, the wheel, as a release would; installs the wheel without its
dependencies into a fresh virtual environment that borrows this one's torch and numpy; and loads
the bundled dataset from outside the repository.
"""

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from helpers import data

ROOT = Path(__file__).resolve().parents[1]
UV = ROOT / ".tools" / "bin" / "uv"
LOAD = """
import json
from helpers import data
dataset = data.load_dataset("mnist-bundled")
print(json.dumps({"module": data.__file__, "file": str(data.BUNDLED_FILE),
                  "sizes": [len(dataset.train), len(dataset.pool), len(dataset.test)]}))
"""


def uv(*args: str) -> None:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run([str(UV), *args], check=True, capture_output=True, env=env)


def test_an_installed_wheel_loads_the_bundled_dataset(tmp_path):
    uv("build", "--quiet", "--out-dir", str(tmp_path / "dist"), str(ROOT))
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "helpers/bundled_data/mnist_bundled.npz" in names
    assert "helpers/bundled_data/README.md" in names  # provenance and licence travel with it
    modules = {str(path.relative_to(ROOT)) for path in (ROOT / "helpers").rglob("*.py")}
    assert modules <= set(names), sorted(modules - set(names))  # subpackages too

    venv = tmp_path / "venv"
    uv("venv", "--quiet", "--python", sys.executable, str(venv))
    python = venv / "bin" / "python"
    uv("pip", "install", "--quiet", "--python", str(python), "--no-deps", str(wheel))
    # torch and numpy from this environment; its .pth files (the editable install) are not read
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    out = subprocess.run(
        [python, "-c", LOAD], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    ).stdout
    loaded = json.loads(out.splitlines()[-1])
    assert Path(loaded["module"]).is_relative_to(venv)
    assert Path(loaded["file"]) == Path(site) / "helpers" / "bundled_data" / "mnist_bundled.npz"
    assert loaded["sizes"] == [3000, 1000, 1000]


def test_a_clone_reads_the_dataset_from_data():
    assert data.BUNDLED_FILE == ROOT / "data" / "mnist_bundled.npz"
