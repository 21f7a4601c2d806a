// Runs an ExecuTorch .pte on the device without Python or torch; the contract is shared with litert_runner.py:
//
//   et_runner MODEL.pte INPUTS.npy OUTDIR THREADS WARMUP RUNS
//
// INPUTS.npy holds N samples (float32 or int8) for the model's single input, whose first dimension is its batch b
// (N must be a multiple of b). Every sample runs once to give OUTDIR/outputs.npy (N, ...); then the first batch runs
// WARMUP untimed and RUNS timed times, written to OUTDIR/latencies.json. Errors: one line on stderr, exit code 1.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>

#include "npy_file.h"

// The wheel ships the threadpool library but not its header; these two declarations match its exported symbols.
namespace executorch::extension::threadpool {
class ThreadPool final {
 public:
  size_t get_thread_count() const;
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

using executorch::aten::ScalarType;
using executorch::extension::from_blob;
using executorch::extension::Module;
using executorch::runtime::Error;
using executorch::runtime::EValue;

namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

ScalarType scalar_type(const std::string& descr) {
  return descr == "<f4" ? ScalarType::Float : ScalarType::Char;
}

std::string descr_of(ScalarType type) {
  require(type == ScalarType::Float || type == ScalarType::Char, "output dtype is neither float32 nor int8");
  return type == ScalarType::Float ? "<f4" : "|i1";
}

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

std::vector<EValue> run_once(Module& module, std::vector<uint8_t>& batch, const std::vector<int32_t>& sizes,
                             ScalarType type) {
  auto tensor = from_blob(batch.data(), {sizes.begin(), sizes.end()}, type);
  auto result = module.forward({EValue(*tensor)});
  require(result.ok(), "forward failed: error " + std::to_string(int(result.error())));
  return std::move(result.get());
}

int run(int argc, char** argv) {
  require(argc == 7, "usage: et_runner MODEL.pte INPUTS.npy OUTDIR THREADS WARMUP RUNS");
  const std::string model_path = argv[1], inputs_path = argv[2], outdir = argv[3];
  const int threads = std::stoi(argv[4]), warmup = std::stoi(argv[5]), runs = std::stoi(argv[6]);

  if (threads > 0) executorch::extension::threadpool::get_threadpool()->_unsafe_reset_threadpool(threads);
  NpyArray inputs = read_npy(inputs_path);

  double load_start = now_ms();
  Module module(model_path, Module::LoadMode::File);
  require(module.load_forward() == Error::Ok, "cannot load method forward of " + model_path);
  double load_ms = now_ms() - load_start;

  auto meta = module.method_meta("forward");
  require(meta.ok(), "no method meta for forward");
  require(meta->num_inputs() == 1, "the runner supports models with one input");
  auto input_meta = meta->input_tensor_meta(0);
  require(input_meta.ok(), "input 0 is not a tensor");
  std::vector<int32_t> sizes(input_meta->sizes().begin(), input_meta->sizes().end());
  require(input_meta->scalar_type() == scalar_type(inputs.descr), "input dtype differs from the model's");

  const int64_t batch = sizes.empty() ? 1 : sizes[0];
  int64_t sample_elems = 1;
  for (size_t i = 1; i < sizes.size(); ++i) sample_elems *= sizes[i];
  const int64_t n = inputs.shape.empty() ? 1 : inputs.shape[0];
  require(n % batch == 0, "number of samples is not a multiple of the model's batch size");
  require(inputs.count() == n * sample_elems, "input sample shape differs from the model's");
  const size_t batch_bytes = batch * sample_elems * inputs.item_size();

  NpyArray outputs;
  std::vector<uint8_t> chunk(batch_bytes);
  for (int64_t start = 0; start < n; start += batch) {
    std::memcpy(chunk.data(), inputs.bytes.data() + start * sample_elems * inputs.item_size(), batch_bytes);
    auto out = run_once(module, chunk, sizes, input_meta->scalar_type());
    require(!out.empty() && out[0].isTensor(), "output 0 is not a tensor");
    const auto& tensor = out[0].toTensor();
    if (start == 0) {
      outputs.descr = descr_of(tensor.scalar_type());
      outputs.shape.push_back(n / batch * (tensor.dim() ? tensor.size(0) : 1));
      for (int d = 1; d < tensor.dim(); ++d) outputs.shape.push_back(tensor.size(d));
    }
    const auto* data = static_cast<const uint8_t*>(tensor.const_data_ptr());
    outputs.bytes.insert(outputs.bytes.end(), data, data + tensor.nbytes());
  }
  write_npy(outdir + "/outputs.npy", outputs);

  std::memcpy(chunk.data(), inputs.bytes.data(), batch_bytes);
  for (int i = 0; i < warmup; ++i) run_once(module, chunk, sizes, input_meta->scalar_type());
  std::vector<double> latencies;
  for (int i = 0; i < runs; ++i) {
    double start = now_ms();
    run_once(module, chunk, sizes, input_meta->scalar_type());
    latencies.push_back(now_ms() - start);
  }

  std::ofstream json(outdir + "/latencies.json");
  json << "{\"runtime\": \"executorch\", \"threads\": "
       << executorch::extension::threadpool::get_threadpool()->get_thread_count() << ", \"warmup\": " << warmup
       << ", \"batch\": " << batch << ", \"load_ms\": " << load_ms << ", \"latencies_ms\": [";
  for (size_t i = 0; i < latencies.size(); ++i) json << (i ? ", " : "") << latencies[i];
  json << "]}\n";
  require(bool(json), "cannot write latencies.json");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "et_runner: %s\n", e.what());
    return 1;
  }
}
