// The processes of one job and the collective operations the calibration needs
// (docs/MPI.md). `mpirun -np N lowbit quantize ...` starts N processes ("ranks");
// each holds a shard of the calibration windows, and per-layer statistics are
// combined with these calls. A plain `lowbit` run is one rank: every call is a
// no-op (the data already is the result) and MPI is never initialised.
//
// Sums are defined in rank order, x ← ((x_0 + x_1) + x_2) + … + x_{N-1}, and every
// rank receives the same bits: floating-point addition is not associative, so the
// order is part of the result, and MPI_Allreduce leaves it to the library's choice
// of algorithm. A single process that sums the same shards in the same order
// (ActivationStats' shard_starts) reproduces an N-rank run bit for bit.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"

namespace lowbit {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // x [n] ← the rank-ordered sum of every rank's x, on every rank.
  virtual Status allreduce_sum(double* x, int64_t n) = 0;
  virtual Status allreduce_sum(float* x, int64_t n) = 0;
  virtual Status allreduce_sum(int64_t* x, int64_t n) = 0;
  // x [n] ← the elementwise maximum over ranks (exact: no order to fix).
  virtual Status allreduce_max(float* x, int64_t n) = 0;
  // Every rank's `local` concatenated in rank order (sizes may differ), on every rank.
  virtual Expected<std::vector<float>> allgather(const std::vector<float>& local) = 0;
  // data [bytes] ← root's data, on every rank.
  virtual Status broadcast(void* data, int64_t bytes, int root) = 0;
  // Ends every rank of the job after an error on one of them, so the others do
  // not wait forever in a collective. A single process returns (its caller exits).
  virtual void abort_job(int exit_code) = 0;
};

// One process: rank 0 of 1.
class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  Status allreduce_sum(double*, int64_t) override { return Status::ok_status(); }
  Status allreduce_sum(float*, int64_t) override { return Status::ok_status(); }
  Status allreduce_sum(int64_t*, int64_t) override { return Status::ok_status(); }
  Status allreduce_max(float*, int64_t) override { return Status::ok_status(); }
  Expected<std::vector<float>> allgather(const std::vector<float>& local) override { return local; }
  Status broadcast(void*, int64_t, int) override { return Status::ok_status(); }
  void abort_job(int) override {}
};

// Whether this binary was built with MPI (CMake LOWBIT_MPI, define LOWBIT_HAVE_MPI).
bool mpi_built();

// The number of processes the launcher started, from its environment
// (OMPI_COMM_WORLD_SIZE, PMI_SIZE); 0 when a PMIx launcher started this process
// without saying how many (PMIX_RANK only: MPI will tell); 1 when not started by one.
int launcher_world_size();

// The job's communicator: MPI (initialised here, finalised by the destructor) when
// started by mpirun with more than one process (or an unknown number), else SingleProcess. Error when
// mpirun started several processes but this binary has no MPI: they would each
// quantize everything and write the same file.
Expected<std::unique_ptr<Communicator>> open_communicator();

}  // namespace lowbit
