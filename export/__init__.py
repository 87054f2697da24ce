"""Export: a training checkpoint becomes a checked device bundle (fp32 and int8 ONNX, ORT format, C header,
manifest and report), written only if the int8 model passes the accuracy gate."""
