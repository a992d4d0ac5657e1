// An engine for the tests of the engine exchange (driver/engine_run.h, docs/engines.md). It
// speaks the line protocol and answers each target from the oracle the request folder holds,
// changed as the target's "mode" option says, so that every way an engine can go wrong is fed
// to pinmark: wrong numbers at one tap, NaN, missing or misnamed tensors, a crash, a hang.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "driver/safetensors_writer.h"
#include "runtime/safetensors.h"

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string folder_of(const std::string& request) { return fs::path(request).parent_path().string(); }

// Copies every tensor of the oracle that an engine reports, in F32 (as an fp32 engine would),
// with `change` applied to each value by name.
template <class Change>
void write_from_oracle(const std::string& request_path, const json& target, const Change& change,
                       bool with_repeat = true, bool with_taps = true) {
  const pinmark::SafetensorsFile oracle(folder_of(request_path) + "/oracle.safetensors");
  pinmark::SafetensorsWriter out;
  out.set_metadata("engine", "fake-engine 1.0");
  out.set_metadata("device", "the test machine");
  out.set_metadata("device_class", target["options"].value("device_class", ""));
  out.set_metadata("math_mode", "fp32 copies of the oracle");
  for (const char* run : {"", "repeat."}) {
    if (*run && !with_repeat) continue;
    for (const std::string& name : oracle.names()) {
      const bool logits = name.find(".logits") != std::string::npos ||
                          name.find(".decode_logits") != std::string::npos;
      const bool tap = name.find(".taps.") != std::string::npos;
      if (!(logits && name.find(".taps.") == std::string::npos) && !(tap && with_taps && !*run))
        continue;
      const pinmark::Tensor<double> t = oracle.read(name);
      std::vector<float> values;
      for (size_t i = 0; i < t.data.size(); ++i)
        values.push_back(static_cast<float>(change(std::string(run) + name, i, t.data[i])));
      out.add_f32(std::string(run) + name, t.shape, values);
    }
  }
  const std::string path = target["output"].get<std::string>();
  out.write(path + ".tmp");
  fs::rename(path + ".tmp", path);
}

json answer(const std::string& request_path) {
  std::ifstream in(request_path);
  const json request = json::parse(in);
  json unsupported = json::object();
  for (const json& target : request["targets"]) {
    const std::string mode = target["options"].value("mode", "exact");
    const auto same = [](const std::string&, size_t, double v) { return v; };
    if (mode == "exact") {
      write_from_oracle(request_path, target, same);
    } else if (mode == "later-layers") {
      // Everything from layer 1 on is off by 1%: the first divergence is there.
      write_from_oracle(request_path, target, [](const std::string& name, size_t, double v) {
        const bool early = name.find("taps.embed") != std::string::npos ||
                           name.find("taps.layers.0.") != std::string::npos;
        return early ? v : v * 1.01 + 0.01;
      });
    } else if (mode == "nan") {
      write_from_oracle(request_path, target, [](const std::string&, size_t i, double v) {
        return i == 3 ? std::nan("") : v;
      });
    } else if (mode == "nondeterministic") {
      write_from_oracle(request_path, target, [](const std::string& name, size_t i, double v) {
        return name.rfind("repeat.", 0) == 0 && i == 0 ? v + 1e-6 : v;
      });
    } else if (mode == "no-repeat") {
      write_from_oracle(request_path, target, same, false);
    } else if (mode == "stray-tensor") {
      write_from_oracle(request_path, target, same);
      pinmark::SafetensorsWriter extra;
      const std::string path = target["output"].get<std::string>();
      const pinmark::SafetensorsFile written(path);
      for (const std::string& name : written.names()) {
        const auto t = written.read(name);
        extra.add_f64(name, t.shape, t.data);
      }
      extra.add_f64("sequence.0.taps.layers.0.atn_out", {1}, {0.0});
      extra.write(path + ".2");
      fs::rename(path + ".2", path);
    } else if (mode == "no-output") {
      // Says done, writes nothing.
    } else if (mode == "unsupported") {
      unsupported[target["name"].get<std::string>()] = "the fake engine does not do this";
    } else if (mode == "error") {
      std::cerr << "fake-engine: about to fail\n";
      return {{"error", "the fake engine was told to fail"}};
    } else if (mode == "unavailable") {
      return {{"unavailable", "the fake engine is switched off"}};
    } else if (mode == "crash") {
      std::cerr << "fake-engine: crashing now\n";
      std::exit(3);
    } else if (mode == "hang") {
      std::this_thread::sleep_for(std::chrono::seconds(60));
    }
  }
  json reply = {{"done", request_path}};
  if (!unsupported.empty()) reply["unsupported"] = unsupported;
  return reply;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--unavailable-at-start") {
    // Says so and exits before pinmark has even sent its request.
    std::cout << json{{"unavailable", "the fake engine has no device"}}.dump() << "\n" << std::flush;
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "--exit-77") {
    std::cerr << "fake-engine: needs a device this machine lacks\n";
    return 77;
  }
  std::cout << "fake-engine: a line that is no reply\n" << std::flush;
  for (std::string line; std::getline(std::cin, line);) {
    json reply;
    try {
      reply = answer(json::parse(line).at("request").get<std::string>());
    } catch (const std::exception& e) {
      reply = {{"error", e.what()}};
    }
    std::cout << reply.dump() << "\n" << std::flush;
  }
  return 0;
}
