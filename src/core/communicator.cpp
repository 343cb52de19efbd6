#include "core/communicator.h"

#include <cstdlib>
#include <string>

namespace lowbit {

#ifdef LOWBIT_HAVE_MPI
// communicator_mpi.cpp
Expected<std::unique_ptr<Communicator>> open_mpi_communicator();
#endif

bool mpi_built() {
#ifdef LOWBIT_HAVE_MPI
  return true;
#else
  return false;
#endif
}

int launcher_world_size() {
  // Open MPI's mpirun, then PMI launchers (MPICH's Hydra, Slurm's srun --mpi=pmi2).
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') continue;
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (*end == '\0' && n >= 1 && n <= (1 << 20)) return static_cast<int>(n);
  }
  const char* pmix = std::getenv("PMIX_RANK");  // e.g. srun --mpi=pmix: the size comes from MPI
  return pmix != nullptr && *pmix != '\0' ? 0 : 1;
}

Expected<std::unique_ptr<Communicator>> open_communicator() {
  const int world = launcher_world_size();
  if (world == 1) return std::unique_ptr<Communicator>(std::make_unique<SingleProcess>());
#ifdef LOWBIT_HAVE_MPI
  return open_mpi_communicator();
#else
  return make_error("started by an MPI launcher ({} processes), but this lowbit was built without MPI "
                    "(install Open MPI and rebuild: CMake finds it with LOWBIT_MPI=AUTO)",
                    world > 1 ? std::to_string(world) : std::string("PMIX_RANK set"));
#endif
}

}  // namespace lowbit
