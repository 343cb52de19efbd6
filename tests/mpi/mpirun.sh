#!/usr/bin/env bash
# mpirun as the tests run it: MPIEXEC NP PROGRAM [ARGS...].
# Open MPI refuses root without --allow-run-as-root; --oversubscribe lets 2 ranks
# start on a machine (or container quota) with fewer free slots; and containers
# usually forbid the cross-memory attach (CMA) that the shared-memory transport
# uses by default, so its single-copy mechanism is turned off (copy through the
# shared segment instead).
set -euo pipefail
mpiexec=$1
np=$2
shift 2
flags=(--oversubscribe --bind-to none)
if [ "$(id -u)" -eq 0 ]; then flags+=(--allow-run-as-root); fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none
exec "$mpiexec" "${flags[@]}" -np "$np" "$@"
