"""An example Triton python-backend model that Plinth's serving image ships: it multiplies
its input by a factor. Used by examples/modeldeployment-python.yaml and the tests.

Environment (from the ModelDeployment's runtime.env), all optional:
SCALE_FACTOR (default 2), SCALE_DELAY_MS (time each batch takes, to make load visible),
SCALE_LOAD_SECONDS (time the model takes to load).
"""

import os
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """out = factor * in, for every request of a batch."""

    def initialize(self, args):
        time.sleep(float(os.environ.get("SCALE_LOAD_SECONDS", "0")))
        self.factor = np.float32(os.environ.get("SCALE_FACTOR", "2"))
        self.delay = float(os.environ.get("SCALE_DELAY_MS", "0")) / 1000

    def execute(self, requests):
        if self.delay:
            time.sleep(self.delay)
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()
            output = pb_utils.Tensor("OUTPUT", (data * self.factor).astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
        return responses
