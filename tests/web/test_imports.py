"""The web app, the store and the worker tasks import without torch (DESIGN: layout)."""

import subprocess
import sys

from support import ROOT


def test_web_and_store_do_not_import_torch():
    code = "import sys, service.db, service.queues, service.kinds\nfrom web import create_app\nassert 'torch' not in sys.modules"  # noqa: E501
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
