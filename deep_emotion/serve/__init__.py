"""What the front ends share besides the pipeline: the example photo and clip, URL parameters, the ONNX export
for the in-browser page. Imports no UI library."""
