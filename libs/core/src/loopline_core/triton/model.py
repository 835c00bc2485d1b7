"""Triton python-backend model that serves a TorchScript file (model.pt beside it).

Written into every version folder by ``loopline_core.triton.repository``. It is
loaded by Triton's python backend stub, never imported by Loopline itself. All
requests of a dynamic batch run through one forward pass. The model's
``INTRA_OP_THREAD_COUNT``/``INTER_OP_THREAD_COUNT`` parameters (as Triton's pytorch
backend reads them) size torch's thread pools in the stub process.
"""

import json
import os

import numpy as np
import torch
import triton_python_backend_utils as pb_utils  # provided by the python backend


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = config.get("parameters") or {}
        threads = int((parameters.get("INTRA_OP_THREAD_COUNT") or {}).get("string_value") or 0)
        if threads > 0:
            torch.set_num_threads(threads)
        interop = int((parameters.get("INTER_OP_THREAD_COUNT") or {}).get("string_value") or 0)
        if interop > 0:
            try:
                torch.set_num_interop_threads(interop)
            except RuntimeError:  # only possible before the pool's first use in this process
                pass
        self.input_names = [i["name"] for i in config["input"]]
        self.output_names = [o["name"] for o in config["output"]]
        self.output_dtypes = [pb_utils.triton_string_to_numpy(o["data_type"]) for o in config["output"]]
        use_gpu = args.get("model_instance_kind") == "GPU" and torch.cuda.is_available()
        self.device = torch.device(f"cuda:{args['model_instance_device_id']}" if use_gpu else "cpu")
        path = os.path.join(args["model_repository"], args["model_version"], "model.pt")
        self.model = torch.jit.load(path, map_location=self.device).eval()

    def execute(self, requests):
        inputs = [[pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.input_names] for r in requests]
        sizes = [batch[0].shape[0] for batch in inputs]
        stacked = [torch.from_numpy(np.concatenate([b[i] for b in inputs])).to(self.device)
                   for i in range(len(self.input_names))]
        with torch.inference_mode():
            result = self.model(*stacked)
        outputs = result if isinstance(result, (tuple, list)) else (result,)
        arrays = [o.detach().cpu().numpy() for o in outputs]
        responses, start = [], 0
        for size in sizes:
            tensors = [pb_utils.Tensor(name, array[start:start + size].astype(dtype))
                       for name, array, dtype in zip(self.output_names, arrays, self.output_dtypes)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses
