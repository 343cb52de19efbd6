// The MPI communicator (core/communicator.h); compiled only when CMake finds MPI
// (LOWBIT_HAVE_MPI). Only the main thread calls MPI (MPI_THREAD_FUNNELED): the
// thread pools compute, the pipeline communicates between passes.
// The C API only: without these, Open MPI's and MPICH's mpi.h pull in the removed
// C++ bindings when compiled as C++ (and their library, libmpi_cxx).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <vector>

#include "core/communicator.h"

namespace lowbit {
namespace {

// Elements per message: MPI counts are int, and chunks let the rank-ordered chain
// below pipeline (rank r adds chunk c while rank r+1 adds chunk c-1).
constexpr int64_t kChunk = int64_t{1} << 22;

template <typename T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }
template <>
MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <>
MPI_Datatype mpi_type<int64_t>() { return MPI_INT64_T; }

Status check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return Status::ok_status();
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  return make_error("MPI {}: {}", what, std::string(text, static_cast<size_t>(len)));
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(int rank, int size) : rank_(rank), size_(size) {}
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  Status allreduce_sum(double* x, int64_t n) override { return ordered_sum(x, n); }
  Status allreduce_sum(float* x, int64_t n) override { return ordered_sum(x, n); }
  Status allreduce_sum(int64_t* x, int64_t n) override { return allreduce(x, n, MPI_SUM); }
  Status allreduce_max(float* x, int64_t n) override { return allreduce(x, n, MPI_MAX); }

  Expected<std::vector<float>> allgather(const std::vector<float>& local) override {
    const int64_t mine = static_cast<int64_t>(local.size());
    std::vector<int64_t> sizes(static_cast<size_t>(size_));
    LB_RETURN_IF_ERROR(check(MPI_Allgather(&mine, 1, MPI_INT64_T, sizes.data(), 1, MPI_INT64_T, MPI_COMM_WORLD),
                             "allgather of sizes"));
    std::vector<int> counts(static_cast<size_t>(size_)), displs(static_cast<size_t>(size_));
    int64_t total = 0;
    for (int r = 0; r < size_; ++r) {
      if (total + sizes[r] > INT_MAX) return make_error("allgather: {}+ floats exceed one MPI message", total + sizes[r]);
      counts[r] = static_cast<int>(sizes[r]);
      displs[r] = static_cast<int>(total);
      total += sizes[r];
    }
    std::vector<float> all(static_cast<size_t>(total));
    LB_RETURN_IF_ERROR(check(MPI_Allgatherv(local.data(), counts[rank_], MPI_FLOAT, all.data(), counts.data(),
                                            displs.data(), MPI_FLOAT, MPI_COMM_WORLD),
                             "allgatherv"));
    return all;
  }

  Status broadcast(void* data, int64_t bytes, int root) override {
    auto* p = static_cast<char*>(data);
    for (int64_t off = 0; off < bytes; off += kChunk) {
      const int c = static_cast<int>(std::min(kChunk, bytes - off));
      LB_RETURN_IF_ERROR(check(MPI_Bcast(p + off, c, MPI_BYTE, root, MPI_COMM_WORLD), "broadcast"));
    }
    return Status::ok_status();
  }

  void abort_job(int exit_code) override { MPI_Abort(MPI_COMM_WORLD, exit_code); }

 private:
  // A chain: rank r receives the sum of ranks 0..r-1, adds its own x and passes it on;
  // the last rank then holds ((x_0 + x_1) + …) + x_{N-1} and broadcasts it. Each link
  // carries n elements once, as a ring allreduce's, but the order is fixed.
  template <typename T>
  Status ordered_sum(T* x, int64_t n) {
    const MPI_Datatype type = mpi_type<T>();
    std::vector<T> prefix(static_cast<size_t>(std::min(n, kChunk)));  // [chunk] sum of the ranks before
    for (int64_t off = 0; off < n; off += kChunk) {
      const int c = static_cast<int>(std::min(kChunk, n - off));
      if (rank_ > 0) {
        LB_RETURN_IF_ERROR(check(MPI_Recv(prefix.data(), c, type, rank_ - 1, kTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
                                 "ordered sum (receive)"));
        for (int i = 0; i < c; ++i) x[off + i] = prefix[i] + x[off + i];
      }
      if (rank_ + 1 < size_) {
        LB_RETURN_IF_ERROR(check(MPI_Send(x + off, c, type, rank_ + 1, kTag, MPI_COMM_WORLD), "ordered sum (send)"));
      }
    }
    return broadcast(x, n * static_cast<int64_t>(sizeof(T)), size_ - 1);
  }

  template <typename T>
  Status allreduce(T* x, int64_t n, MPI_Op op) {
    for (int64_t off = 0; off < n; off += kChunk) {
      const int c = static_cast<int>(std::min(kChunk, n - off));
      LB_RETURN_IF_ERROR(check(MPI_Allreduce(MPI_IN_PLACE, x + off, c, mpi_type<T>(), op, MPI_COMM_WORLD), "allreduce"));
    }
    return Status::ok_status();
  }

  static constexpr int kTag = 1801;
  int rank_;
  int size_;
};

}  // namespace

Expected<std::unique_ptr<Communicator>> open_mpi_communicator() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return make_error("MPI is already initialised in this process (one communicator per process)");
  int provided = 0;
  LB_RETURN_IF_ERROR(check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "init"));
  // Errors come back as Status; the CLI then ends the job (abort_job) instead of
  // leaving the other ranks in a collective.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return std::unique_ptr<Communicator>(std::make_unique<MpiCommunicator>(rank, size));
}

}  // namespace lowbit
