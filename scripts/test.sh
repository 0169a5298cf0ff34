#!/usr/bin/env bash
# Set up and run the whole test suite. The tests start the servers they need (jackd on the
# dummy driver, Xvfb) themselves, and skip with a reason when one is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
. .venv/bin/activate
exec python -m pytest -q -rs "$@"
