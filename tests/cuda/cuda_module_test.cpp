// The CUDA backend as a module (cuda_module/cuda_module.h): which binaries map cuBLAS, where
// the module is looked for, what is reported when it cannot be loaded, and that the cuda
// targets go through it. Runs without a GPU.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#include "cuda_module/cuda_module.h"
#include "runtime/cuda/device_info.h"
#include "runtime/target.h"
#include "tests/driver/test_support.h"
#include "tests/support/temp_dir.h"

namespace pinmark {
namespace {

using test::ScopedEnv;
using test::TempDir;

bool mapped(const std::string& library) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find(library) != std::string::npos) return true;
  return false;
}

// Taken before main: every library the executable links is mapped by then.
const bool cublas_mapped_at_start = mapped("libcublas");

std::string command_output(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) throw std::runtime_error("cannot run " + command);
  std::string out;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe.get())) > 0) out.append(buffer.data(), n);
  return out;
}

// Each test starts and ends with the process's module forgotten, so that it looks again with
// the environment the test sets.
class CudaModuleTest : public ::testing::Test {
 protected:
  void SetUp() override { forget_process_cuda_module_for_tests(); }
  void TearDown() override { forget_process_cuda_module_for_tests(); }
};

TEST_F(CudaModuleTest, ThisTestBinaryDoesNotLinkCuBlas) {
  EXPECT_FALSE(cublas_mapped_at_start);
}

// ldd lists what a binary maps at start. The module lists cuBLAS, so the check can fail.
TEST_F(CudaModuleTest, OnlyTheModuleLinksCuBlas) {
  EXPECT_NE(command_output("ldd " PINMARK_CUDA_MODULE_FILE).find("libcublas"), std::string::npos);
  for (const char* binary : {PINMARK_CPU_BINARIES}) {
    const std::string ldd = command_output(std::string("ldd ") + binary);
    EXPECT_NE(ldd.find("libc.so"), std::string::npos) << binary << ":\n" << ldd;
    EXPECT_EQ(ldd.find("libcublas"), std::string::npos) << binary << ":\n" << ldd;
  }
}

TEST_F(CudaModuleTest, LooksNextToTheExecutableThenInTheInstallLayoutThenInTheBuild) {
  const auto candidates = cuda_module_candidates(nullptr, "/opt/x/bin");
  ASSERT_EQ(candidates.size(), 3u);
  EXPECT_EQ(candidates[0], "/opt/x/bin/libpinmark_cuda.so");
  EXPECT_EQ(candidates[1].rfind("/opt/x/bin/../", 0), 0u) << candidates[1];
  EXPECT_NE(candidates[1].find("/libpinmark_cuda.so"), std::string::npos) << candidates[1];
  EXPECT_EQ(candidates[2], PINMARK_CUDA_MODULE_FILE);
  EXPECT_EQ(cuda_module_candidates("", "/opt/x/bin"), candidates);
}

TEST_F(CudaModuleTest, TheOverrideIsTheOnlyFileTried) {
  EXPECT_EQ(cuda_module_candidates("/elsewhere/m.so", "/opt/x/bin"),
            std::vector<std::string>{"/elsewhere/m.so"});
}

TEST_F(CudaModuleTest, NoFileFoundSaysWhereItLooked) {
  TempDir dir;
  const CudaModuleLoad load = load_cuda_module({dir.file("a.so"), dir.file("b.so")});
  EXPECT_EQ(load.module, nullptr);
  EXPECT_EQ(load.path, "");
  EXPECT_EQ(load.why, "no libpinmark_cuda.so found (looked for " + dir.file("a.so") + ", " +
                          dir.file("b.so") + ")");
  EXPECT_EQ(cuda_module_report(load), "no cuda module: " + load.why);
}

TEST_F(CudaModuleTest, AFileThatIsNotALibraryIsReportedWithTheLoadersError) {
  TempDir dir;
  std::ofstream(dir.file("libpinmark_cuda.so")) << "not an ELF file";
  // The first existing file decides: a good module after it is not tried.
  const CudaModuleLoad load =
      load_cuda_module({dir.file("missing.so"), dir.file("libpinmark_cuda.so"), PINMARK_PRETEND_MODULE});
  EXPECT_EQ(load.module, nullptr);
  EXPECT_EQ(load.path, dir.file("libpinmark_cuda.so"));
  EXPECT_EQ(load.why.rfind("cannot load " + dir.file("libpinmark_cuda.so") + ": ", 0), 0u) << load.why;
  EXPECT_NE(load.why.find("libpinmark_cuda.so: "), load.why.rfind("libpinmark_cuda.so: ")) << load.why;
}

TEST_F(CudaModuleTest, ALibraryWithoutTheEntryPointIsRefused) {
  const CudaModuleLoad load = load_cuda_module({PINMARK_NO_ENTRY_MODULE});
  EXPECT_EQ(load.module, nullptr);
  EXPECT_EQ(load.why, std::string(PINMARK_NO_ENTRY_MODULE) +
                          " is not a pinmark CUDA module: it has no pinmark_cuda_module_v1");
}

TEST_F(CudaModuleTest, AModuleOfAnotherInterfaceVersionIsRefused) {
  const CudaModuleLoad load = load_cuda_module({PINMARK_OTHER_ABI_MODULE});
  EXPECT_EQ(load.module, nullptr);
  EXPECT_EQ(load.why, std::string(PINMARK_OTHER_ABI_MODULE) +
                          " is a pinmark CUDA module of another version (interface " +
                          std::to_string(PINMARK_CUDA_MODULE_ABI + 100) + ", this build " +
                          std::to_string(PINMARK_CUDA_MODULE_ABI) + ")");
}

// Without a module the cuda targets cannot run here, exactly as without a device.
TEST_F(CudaModuleTest, WithoutAModuleCudaTargetsCannotRunHere) {
  TempDir dir;
  ScopedEnv driver("PINMARK_CUDA_DRIVER", PINMARK_PRETEND_MODULE);
  ScopedEnv module("PINMARK_CUDA_MODULE", dir.file("none.so").c_str());
  EXPECT_FALSE(cuda_device_available());
  EXPECT_EQ(make_target_backend(Target{"cuda", "fp32"}), nullptr);
  EXPECT_EQ(target_device_class(Target{"cuda", "bf16"}), "");
  EXPECT_EQ(target_provenance(Target{"cuda", "bf16"}), "");
  EXPECT_EQ(target_math_mode(Target{"cuda", "bf16"}), "");
  EXPECT_NE(make_target_backend(Target{"cpu", "bf16"}), nullptr);
  try {
    make_cuda_backend(CudaPrecision::fp32);
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "no CUDA device is available: no libpinmark_cuda.so found "
                                     "(looked for " + dir.file("none.so") + ")");
  }
}

// The targets' device class, provenance and math mode come from the module.
TEST_F(CudaModuleTest, CudaTargetsGoThroughTheModule) {
  ScopedEnv driver("PINMARK_CUDA_DRIVER", PINMARK_PRETEND_MODULE);
  ScopedEnv module("PINMARK_CUDA_MODULE", PINMARK_PRETEND_MODULE);
  EXPECT_TRUE(cuda_device_available());
  EXPECT_EQ(target_device_class(Target{"cuda", "fp32"}), "sm00");
  EXPECT_EQ(target_provenance(Target{"cuda", "fp32"}), "pretend device, from the fake module");
  EXPECT_EQ(target_math_mode(Target{"cuda", "fp16"}), "pretend math mode 3");
  EXPECT_EQ(target_device_class(Target{"cpu", "fp32"}), "");
  try {
    make_target_backend(Target{"cuda", "tf32"});
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "the fake module makes no backend");
  }
}

TEST_F(CudaModuleTest, DebugLinesSayWhatTheDriverSaidAndWhichModuleWasLoaded) {
  ScopedEnv driver("PINMARK_CUDA_DRIVER", PINMARK_PRETEND_MODULE);
  ScopedEnv module("PINMARK_CUDA_MODULE", PINMARK_PRETEND_MODULE);
  ScopedEnv debug("PINMARK_CUDA_DEBUG", "1");
  testing::internal::CaptureStderr();
  (void)cuda_device_available();
  (void)cuda_device_available();  // printed once, when loaded
  EXPECT_EQ(testing::internal::GetCapturedStderr(),
            "pinmark: cuda driver: 1 device(s)\npinmark: cuda module " +
                std::string(PINMARK_PRETEND_MODULE) + "\n");
}

TEST_F(CudaModuleTest, DebugLineSaysWhyNoModuleWasLoaded) {
  ScopedEnv driver("PINMARK_CUDA_DRIVER", PINMARK_PRETEND_MODULE);
  ScopedEnv module("PINMARK_CUDA_MODULE", PINMARK_OTHER_ABI_MODULE);
  ScopedEnv debug("PINMARK_CUDA_DEBUG", "1");
  testing::internal::CaptureStderr();
  EXPECT_FALSE(cuda_device_available());
  EXPECT_EQ(testing::internal::GetCapturedStderr(),
            "pinmark: cuda driver: 1 device(s)\npinmark: no cuda module: " +
                std::string(PINMARK_OTHER_ABI_MODULE) +
                " is a pinmark CUDA module of another version (interface " +
                std::to_string(PINMARK_CUDA_MODULE_ABI + 100) + ", this build " +
                std::to_string(PINMARK_CUDA_MODULE_ABI) + ")\n");
}

TEST_F(CudaModuleTest, NoDebugLineUnlessAsked) {
  ScopedEnv driver("PINMARK_CUDA_DRIVER", PINMARK_PRETEND_MODULE);
  ScopedEnv module("PINMARK_CUDA_MODULE", PINMARK_PRETEND_MODULE);
  ScopedEnv debug("PINMARK_CUDA_DEBUG", "0");
  testing::internal::CaptureStderr();
  (void)cuda_device_available();
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST_F(CudaModuleTest, AMissingDriverLibraryMeansNoDevice) {
  TempDir dir;
  const CudaDriverProbe probe = probe_cuda_driver(dir.file("libcuda.so.1"));
  EXPECT_EQ(probe.devices, 0);
  EXPECT_EQ(probe.why.rfind("no CUDA driver: " + dir.file("libcuda.so.1") + ": ", 0), 0u)
      << probe.why;
}

TEST_F(CudaModuleTest, ALibraryWithoutTheDriverFunctionsIsNotADriver) {
  const CudaDriverProbe probe = probe_cuda_driver(PINMARK_NO_ENTRY_MODULE);
  EXPECT_EQ(probe.devices, 0);
  EXPECT_EQ(probe.why, std::string(PINMARK_NO_ENTRY_MODULE) +
                           " is not a CUDA driver: it has no cuInit or no cuDeviceGetCount");
}

TEST_F(CudaModuleTest, ADriverWhoseInitFailsHasNoDevice) {
  const CudaDriverProbe probe = probe_cuda_driver(PINMARK_FAILING_DRIVER);
  EXPECT_EQ(probe.devices, 0);
  EXPECT_EQ(probe.why, "the CUDA driver " + std::string(PINMARK_FAILING_DRIVER) +
                           " found no usable device (cuInit: error 100)");
}

TEST_F(CudaModuleTest, ADriverThatCountsNoDeviceHasNone) {
  const CudaDriverProbe probe = probe_cuda_driver(PINMARK_OTHER_ABI_MODULE);
  EXPECT_EQ(probe.devices, 0);
  EXPECT_EQ(probe.why, "the CUDA driver " + std::string(PINMARK_OTHER_ABI_MODULE) +
                           " counts no device");
}

TEST_F(CudaModuleTest, ADriverThatCountsADevice) {
  const CudaDriverProbe probe = probe_cuda_driver(PINMARK_PRETEND_MODULE);
  EXPECT_EQ(probe.devices, 1);
  EXPECT_EQ(probe.why, "");
}

// Without a device the module is not loaded to say so: the case tests, which ask on every case
// for the cuda targets, do not map cuBLAS on a machine without a GPU.
TEST_F(CudaModuleTest, WithoutADeviceTheModuleIsNotLoaded) {
  TempDir dir;
  ScopedEnv driver("PINMARK_CUDA_DRIVER", dir.file("libcuda.so.1").c_str());
  ScopedEnv module("PINMARK_CUDA_MODULE", PINMARK_PRETEND_MODULE);
  ScopedEnv debug("PINMARK_CUDA_DEBUG", "1");
  testing::internal::CaptureStderr();
  EXPECT_FALSE(cuda_device_available());
  EXPECT_EQ(make_target_backend(Target{"cuda", "fp32"}), nullptr);
  EXPECT_EQ(target_device_class(Target{"cuda", "fp32"}), "");
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err.rfind("pinmark: no CUDA driver: " + dir.file("libcuda.so.1") + ": ", 0), 0u) << err;
  const std::string tail = " (the cuda module is not loaded to ask)\n";
  ASSERT_GE(err.size(), tail.size()) << err;
  EXPECT_EQ(err.substr(err.size() - tail.size()), tail);
  EXPECT_EQ(err.find("cuda module /"), std::string::npos) << err;
}

// The process as the case tests run it, on this machine: asking for a cuda target maps cuBLAS
// only where the driver has a device.
TEST_F(CudaModuleTest, AskingForACudaTargetWithoutADeviceDoesNotMapCuBlas) {
  ScopedEnv driver("PINMARK_CUDA_DRIVER", nullptr);
  ScopedEnv module("PINMARK_CUDA_MODULE", nullptr);
  if (process_cuda_driver().devices > 0) GTEST_SKIP() << "this machine has a CUDA device";
  if (mapped("libcublas")) GTEST_SKIP() << "an earlier test in this process mapped cuBLAS";
  EXPECT_EQ(make_target_backend(Target{"cuda", "bf16"}), nullptr);
  EXPECT_EQ(target_provenance(Target{"cuda", "bf16"}), "");
  EXPECT_FALSE(mapped("libcublas"));
}

// The real module loads on a machine with cuBLAS and no GPU, maps cuBLAS only then, and reports
// no device.
TEST_F(CudaModuleTest, TheBuiltModuleLoadsFromTheBuildTreeAndMapsCuBlas) {
  ScopedEnv module("PINMARK_CUDA_MODULE", nullptr);
  const CudaModuleLoad& load = process_cuda_module();
  ASSERT_NE(load.module, nullptr) << load.why;
  EXPECT_EQ(load.path, PINMARK_CUDA_MODULE_FILE);
  EXPECT_TRUE(mapped("libcublas"));
  if (!cuda_device_available()) {
    EXPECT_EQ(make_target_backend(Target{"cuda", "fp32"}), nullptr);
  }
}

}  // namespace
}  // namespace pinmark
