# Generates test/goldens/pil-resize.json: SHA-256 of Pillow's Image.resize output for synthetic
# RGB images, per (input size, output size, filter). The input pattern is the integer formula in
# pattern() (mirrored in test/api/image.test.ts), so no image files are stored.
#   PYTHONPATH=<pillow> python3 test/goldens/pil-resize.py > test/goldens/pil-resize.json
import hashlib, json, sys
import numpy as np
import PIL
from PIL import Image

def pattern(w, h):
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    out = np.zeros((h, w, 3), np.uint8)
    for c in range(3):
        v = (x * 7919 + y * 104729 + c * 1299709) ^ (x * y * (c + 3)) ^ ((x // 7) * 255 * ((y // 5) % 2))
        out[:, :, c] = (v & 255).astype(np.uint8)
    return out

FILTERS = {'lanczos': Image.LANCZOS, 'bilinear': Image.BILINEAR, 'bicubic': Image.BICUBIC, 'box': Image.BOX, 'hamming': Image.HAMMING}
CASES = [((400, 300), (448, 336)), ((1000, 750), (448, 336)), ((97, 61), (336, 221)), ((513, 257), (31, 17)),
         ((640, 480), (341, 256)), ((300, 300), (300, 150)), ((300, 300), (150, 300)), ((256, 256), (256, 256)),
         ((5, 3), (336, 336)), ((3000, 2000), (504, 336))]
out = {'pillow': PIL.__version__, 'cases': []}
for (w, h), (W, H) in CASES:
    img = Image.fromarray(pattern(w, h), 'RGB')
    for name, f in FILTERS.items():
        data = np.asarray(img.resize((W, H), f)).tobytes()
        out['cases'].append({'in': [w, h], 'out': [W, H], 'filter': name, 'sha256': hashlib.sha256(data).hexdigest()})
sys.stdout.write('{"pillow": %s, "cases": [\n' % json.dumps(out['pillow']))
sys.stdout.write(',\n'.join(json.dumps(c) for c in out['cases']))
sys.stdout.write('\n]}\n')
