import sys
from pathlib import Path

# checks.py and helmrender.py are plain modules next to the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))
