// AtomicFileWriter::write_direct: a block large enough for the O_DIRECT path, written
// after an unaligned prefix and followed by more stream writes, reads back byte for
// byte; so does a small block (the stream path) and a tmpfs-like fallback is the
// same code path as write().
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/atomic_file_writer.h"
#include "model_writers.h"

namespace lowbit {
namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

TEST(AtomicFileWriter, WriteDirectReadsBackAroundUnalignedEnds) {
  testing::ScopedTempDir dir("atomic_direct");
  for (uint64_t big : {uint64_t{(40ull << 20) + 12345}, uint64_t{1000}}) {
    const std::string path = dir.file("f" + std::to_string(big));
    std::vector<uint8_t> data(big);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 2654435761u >> 13);
    const std::string head = "header of 37 bytes, not 4 KiB aligned";
    const std::string tail = "tail";
    {
      auto w = AtomicFileWriter::create(path);
      ASSERT_TRUE(w.ok()) << w.status().message();
      ASSERT_TRUE(w->write(head.data(), head.size()).ok());
      const Status st = w->write_direct(data.data(), data.size());
      ASSERT_TRUE(st.ok()) << st.message();
      ASSERT_TRUE(w->write(tail.data(), tail.size()).ok());
      EXPECT_EQ(w->offset(), head.size() + big + tail.size());
      ASSERT_TRUE(w->commit().ok());
    }
    const std::string got = read_all(path);
    ASSERT_EQ(got.size(), head.size() + big + tail.size());
    EXPECT_EQ(got.substr(0, head.size()), head);
    EXPECT_TRUE(got.compare(head.size(), big, reinterpret_cast<const char*>(data.data()), big) == 0) << big;
    EXPECT_EQ(got.substr(head.size() + big), tail);
  }
}

}  // namespace
}  // namespace lowbit
