#!/usr/bin/env bash
# mpirun as the tests run it: MPIEXEC NP PROGRAM [ARGS...].
# Open MPI refuses root without --allow-run-as-root; --oversubscribe lets more
# ranks start than there are cores (on the 2-core development machine -np 2 runs
# without it, -np 3 does not); and containers under Docker's default seccomp
# profile forbid the cross-memory attach (CMA) that the shared-memory transport
# uses for large messages, so its single-copy mechanism is turned off (copy
# through the shared segment instead; the development container allows CMA, CI's
# may not).
set -euo pipefail
mpiexec=$1
np=$2
shift 2
flags=(--oversubscribe --bind-to none)
if [ "$(id -u)" -eq 0 ]; then flags+=(--allow-run-as-root); fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none
exec "$mpiexec" "${flags[@]}" -np "$np" "$@"
