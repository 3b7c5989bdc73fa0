"""A program written against axelera.runtime the way the vendor's tutorial teaches it:
context manager, one Connection + ModelInstance per worker thread, prefill/drain,
explicit release. Used by tests through ``axrun exec``; it knows nothing about axrun.

usage: python vendor_style.py [--double-buffer] MODEL_DIR IMAGE...

With --double-buffer: one instance loaded with double_buffer=True and one input buffer,
refilled as soon as run() returns (run() has consumed it); each run() returns the
result of the input two calls earlier, and two dummy runs drain the last two.
"""

import json
import queue
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
from axelera.runtime import Context


def preprocess(path, info):
    image = cv2.imread(str(path))[..., ::-1]  # RGB
    h, w = image.shape[:2]
    s = 256 / min(h, w)
    image = cv2.resize(image, (round(w * s), round(h * s)))
    th, tw = info.unpadded_shape[1:3]
    y, x = (image.shape[0] - th) // 2, (image.shape[1] - tw) // 2
    x_float = (image[y:y + th, x:x + tw].astype(np.float32) - 127) / 128
    q = np.clip(np.round(x_float / info.scale + info.zero_point), -128, 127).astype(np.int8)
    return np.pad(q, info.padding[1:], constant_values=info.zero_point)


class Worker(threading.Thread):
    def __init__(self, instance, inputs_info, outputs_info):
        super().__init__(daemon=True)
        self.instance = instance
        self.inputs = [np.zeros(i.shape, i.dtype) for i in inputs_info]
        self.outputs = [np.zeros(i.shape, i.dtype) for i in outputs_info]
        self.todo, self.done = queue.Queue(), queue.Queue()

    def run(self):
        while (frame := self.todo.get()) is not None:
            self.inputs[0][0] = frame
            self.instance.run(self.inputs, self.outputs)
            self.done.put([o.copy() for o in self.outputs])


def top_class(result, out):
    depadded = result[tuple(slice(b, d - e) for (b, e), d in
                            zip(out.padding, out.shape, strict=True))]
    logits = (depadded.astype(np.float32) - out.zero_point) * out.scale
    return int(logits.reshape(-1).argmax())


def double_buffered(ctx, model, images, labels):
    inp, out = model.inputs()[0], model.outputs()[0]
    conn = ctx.device_connect(device=None, num_sub_devices=inp.shape[0])
    instance = conn.load_model_instance(model, num_sub_devices=inp.shape[0],
                                        aipu_cores=inp.shape[0], double_buffer=True)
    inputs = [np.zeros(inp.shape, inp.dtype)]
    outputs = [np.zeros(out.shape, out.dtype)]
    frames = [preprocess(p, inp) for p in images] + [None, None]
    for i, frame in enumerate(frames):
        if frame is not None:
            inputs[0][0] = frame  # the same buffer every time: run() has consumed it
        instance.run(inputs, outputs)
        if i >= 2:
            top = top_class(outputs[0], out)
            print(json.dumps({"image": Path(images[i - 2]).name, "class": top,
                              "label": labels[top]}), flush=True)
    instance.release()


def main():
    args = sys.argv[1:]
    double_buffer = args[0] == "--double-buffer"
    model_dir, images = Path(args[double_buffer]), args[double_buffer + 1:]
    labels = (model_dir / "labels.txt").read_text().splitlines()
    with Context() as ctx:
        model = ctx.load_model(str(model_dir / "model.json"))
        if double_buffer:
            double_buffered(ctx, model, images, labels)
            return
        inp, out = model.inputs()[0], model.outputs()[0]
        batch = inp.shape[0]
        workers = []
        for _ in range(4 // batch):
            conn = ctx.device_connect(device=None, num_sub_devices=batch)
            instance = conn.load_model_instance(model, num_sub_devices=batch, aipu_cores=batch)
            workers.append(Worker(instance, model.inputs(), model.outputs()))
        for w in workers:
            w.start()
        n, submitted, collected = len(workers), 0, 0

        def collect():
            nonlocal collected
            top = top_class(workers[collected % n].done.get()[0], out)
            print(json.dumps({"image": Path(images[collected]).name, "class": top,
                              "label": labels[top]}), flush=True)
            collected += 1

        for path in images:  # prefill, then one in one out, then drain
            if submitted >= n:
                collect()
            workers[submitted % n].todo.put(preprocess(path, inp))
            submitted += 1
        while collected < submitted:
            collect()
        for w in workers:
            w.todo.put(None)
            w.join()
        for w in workers:
            w.instance.release()


if __name__ == "__main__":
    main()
