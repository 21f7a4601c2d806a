// Runs an ExecuTorch .pte on the device without Python or torch; the contract is shared with litert_runner.py:
//
//   et_runner MODEL.pte OUTDIR THREADS WARMUP RUNS INPUT_0.npy [INPUT_1.npy ...]
//
// One INPUT_i.npy per model input, in the model's input order, each N samples in the input's own dtype (float32,
// int8, uint8, int32, int64 or bool) and per-sample shape; the input's first dimension is the model's batch b (N a
// multiple of b). Every sample runs once to give OUTDIR/OUTPUT_j.npy (N, ...) for each model output j; then the
// first batch runs WARMUP untimed and RUNS timed times, written to OUTDIR/latencies.json with the output count.
// Errors: one line on stderr naming the input or output index, exit code 1.
#include <algorithm>
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
using executorch::extension::TensorPtr;
using executorch::runtime::Error;
using executorch::runtime::EValue;

namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

struct DType {
  ScalarType type;
  const char* descr;
  const char* name;
};

const DType DTYPES[] = {
    {ScalarType::Float, "<f4", "float32"}, {ScalarType::Char, "|i1", "int8"},  {ScalarType::Byte, "|u1", "uint8"},
    {ScalarType::Int, "<i4", "int32"},     {ScalarType::Long, "<i8", "int64"}, {ScalarType::Bool, "|b1", "bool"},
};

const DType* dtype_of(ScalarType type) {
  for (const auto& d : DTYPES)
    if (d.type == type) return &d;
  return nullptr;
}

const DType* dtype_of(const std::string& descr) {
  for (const auto& d : DTYPES)
    if (descr == d.descr) return &d;
  return nullptr;
}

template <typename Ints>
std::string shape_text(const Ints& dims, size_t from) {
  std::string text = "(";
  for (size_t i = from; i < dims.size(); ++i) text += std::to_string(dims[i]) + (i + 1 < dims.size() ? ", " : "");
  if (dims.size() - from == 1) text += ",";
  return text + ")";
}

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// One model input: its file's samples, the model's sizes and dtype, and the buffer a batch is copied into.
struct Input {
  NpyArray samples;
  std::vector<int32_t> sizes;
  ScalarType type;
  size_t batch_bytes = 0;
  std::vector<uint8_t> chunk;
};

Input read_input(const std::string& path, size_t index, const executorch::runtime::TensorInfo& meta) {
  Input in{read_npy(path), {meta.sizes().begin(), meta.sizes().end()}, meta.scalar_type()};
  const std::string which = "input " + std::to_string(index) + " (" + path + "): ";
  const DType* model = dtype_of(in.type);
  require(model, which + "the model's dtype (ExecuTorch scalar type " + std::to_string(int(in.type)) +
                     ") is not one the runner exchanges");
  require(in.samples.descr == model->descr, which + "dtype " + dtype_of(in.samples.descr)->name +
                                                " differs from the model's " + model->name);
  const int64_t batch = in.sizes.empty() ? 1 : in.sizes[0];
  int64_t sample_elems = 1;
  for (size_t i = 1; i < in.sizes.size(); ++i) sample_elems *= in.sizes[i];
  const auto& shape = in.samples.shape;
  std::vector<int64_t> want(in.sizes.begin(), in.sizes.end());
  bool same = shape.size() == std::max<size_t>(want.size(), 1);
  for (size_t i = 1; same && i < want.size(); ++i) same = shape[i] == want[i];
  require(same, which + "per-sample shape " + shape_text(shape, 1) + " differs from the model's " +
                    shape_text(want, 1) + " (model input " + shape_text(want, 0) + ")");
  const int64_t n = shape[0];
  require(n > 0 && n % batch == 0, which + std::to_string(n) + " samples are not a multiple of the model's batch " +
                                       std::to_string(batch));
  in.batch_bytes = batch * sample_elems * in.samples.item_size();
  in.chunk.resize(in.batch_bytes);
  return in;
}

void fill_batch(std::vector<Input>& inputs, int64_t index) {
  for (auto& in : inputs)
    std::memcpy(in.chunk.data(), in.samples.bytes.data() + index * in.batch_bytes, in.batch_bytes);
}

// The model on the batch the inputs' chunks hold: what the timed runs measure.
std::vector<EValue> forward(Module& module, std::vector<Input>& inputs) {
  std::vector<TensorPtr> tensors;  // keep the tensors alive through forward
  std::vector<EValue> values;
  for (auto& in : inputs) {
    tensors.push_back(from_blob(in.chunk.data(), {in.sizes.begin(), in.sizes.end()}, in.type));
    values.emplace_back(*tensors.back());
  }
  auto result = module.forward(values);
  require(result.ok(), "forward failed: error " + std::to_string(int(result.error())));
  return std::move(result.get());
}

void append_output(NpyArray& out, const EValue& value, size_t index, int64_t batches) {
  require(value.isTensor(), "output " + std::to_string(index) + " is not a tensor");
  const auto& tensor = value.toTensor();
  if (out.descr.empty()) {
    const DType* d = dtype_of(tensor.scalar_type());
    require(d, "output " + std::to_string(index) + ": ExecuTorch scalar type " +
                   std::to_string(int(tensor.scalar_type())) + " is not one the runner exchanges");
    out.descr = d->descr;
    out.shape.push_back(batches * (tensor.dim() ? tensor.size(0) : 1));
    for (int d = 1; d < tensor.dim(); ++d) out.shape.push_back(tensor.size(d));
  }
  const auto* data = static_cast<const uint8_t*>(tensor.const_data_ptr());
  out.bytes.insert(out.bytes.end(), data, data + tensor.nbytes());
}

int run(int argc, char** argv) {
  require(argc >= 7, "usage: et_runner MODEL.pte OUTDIR THREADS WARMUP RUNS INPUT_0.npy [INPUT_1.npy ...]");
  const std::string model_path = argv[1], outdir = argv[2];
  const int threads = std::stoi(argv[3]), warmup = std::stoi(argv[4]), runs = std::stoi(argv[5]);
  const size_t given = argc - 6;

  if (threads > 0) executorch::extension::threadpool::get_threadpool()->_unsafe_reset_threadpool(threads);
  double load_start = now_ms();
  Module module(model_path, Module::LoadMode::File);
  require(module.load_forward() == Error::Ok, "cannot load method forward of " + model_path);
  double load_ms = now_ms() - load_start;

  auto meta = module.method_meta("forward");
  require(meta.ok(), "no method meta for forward");
  require(meta->num_inputs() == given, std::to_string(given) + " input arrays given, the model takes " +
                                           std::to_string(meta->num_inputs()));
  std::vector<Input> inputs;
  for (size_t i = 0; i < given; ++i) {
    auto input_meta = meta->input_tensor_meta(i);
    require(input_meta.ok(), "input " + std::to_string(i) + " of the model is not a tensor");
    inputs.push_back(read_input(argv[6 + i], i, *input_meta));
  }
  const int64_t batch = inputs[0].sizes.empty() ? 1 : inputs[0].sizes[0];
  const int64_t batches = inputs[0].samples.shape[0] / batch;
  for (size_t i = 1; i < given; ++i) {
    const int64_t b = inputs[i].sizes.empty() ? 1 : inputs[i].sizes[0];
    require(inputs[i].samples.shape[0] / b == batches,
            "input " + std::to_string(i) + ": " + std::to_string(inputs[i].samples.shape[0]) + " samples, input 0 has " +
                std::to_string(inputs[0].samples.shape[0]));
  }

  std::vector<NpyArray> outputs(meta->num_outputs());
  for (int64_t b = 0; b < batches; ++b) {
    fill_batch(inputs, b);
    auto out = forward(module, inputs);
    require(out.size() == outputs.size(), "forward returned " + std::to_string(out.size()) + " outputs, the model has " +
                                              std::to_string(outputs.size()));
    for (size_t j = 0; j < out.size(); ++j) append_output(outputs[j], out[j], j, batches);
  }
  for (size_t j = 0; j < outputs.size(); ++j) write_npy(outdir + "/OUTPUT_" + std::to_string(j) + ".npy", outputs[j]);

  fill_batch(inputs, 0);
  for (int i = 0; i < warmup; ++i) forward(module, inputs);
  std::vector<double> latencies;
  for (int i = 0; i < runs; ++i) {
    double start = now_ms();
    forward(module, inputs);
    latencies.push_back(now_ms() - start);
  }

  std::ofstream json(outdir + "/latencies.json");
  json << "{\"runtime\": \"executorch\", \"threads\": "
       << executorch::extension::threadpool::get_threadpool()->get_thread_count() << ", \"warmup\": " << warmup
       << ", \"batch\": " << batch << ", \"outputs\": " << outputs.size() << ", \"load_ms\": " << load_ms
       << ", \"latencies_ms\": [";
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
