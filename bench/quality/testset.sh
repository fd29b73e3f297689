# testset.sh: sourced by run.sh and seeds.sh. Sets test_x, test_y and
# test_name: the full Fashion-MNIST test set from Debian's
# dataset-fashion-mnist, written as .npy into $out, or the committed
# 1,000-image slice (QUALITY_SLICE=1, or the package missing). Needs $out,
# $T (testmodels) and $PY; accuracy MODEL (test accuracy by `eval`) needs $bin.
full=/usr/share/datasets/fashion-mnist
if [ "${QUALITY_SLICE:-0}" != 1 ] && [ -f $full/t10k-images-idx3-ubyte.gz ]; then
	$PY - "$full" "$out" <<'PY'
import gzip, sys
import numpy as np
src, out = sys.argv[1], sys.argv[2]
def idx(name):
    with gzip.open(f"{src}/{name}") as f:
        data = f.read()
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)
np.save(f"{out}/test_x.npy", (idx("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255).reshape(-1, 1, 28, 28))
np.save(f"{out}/test_y.npy", idx("t10k-labels-idx1-ubyte.gz").astype(np.int64))
PY
	test_x=$out/test_x.npy test_y=$out/test_y.npy test_name="the full Fashion-MNIST test set (10,000 images, $full)"
else
	test_x=$T/fashion_test_x.npy test_y=$T/fashion_test_y.npy test_name="the committed 1,000-image test slice"
fi
accuracy() { "$bin" eval -q "$1" --data "$test_x" --labels "$test_y" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["accuracy"])'; }
