"""Camera images as robots publish and record them: `sensor_msgs/Image`
(raw pixels in several encodings) and `sensor_msgs/CompressedImage` (jpeg
or png, as image_transport's compressed plugin writes it), decoded to
(H, W, 3) uint8 RGB. One decoder for the perception node, bags, datasets
and replay; the perception node prefers cv_bridge where it is installed.
"""

from __future__ import annotations

import io

import numpy as np

# encoding -> (channels, indices of R, G, B); mono is replicated to RGB.
_ENCODINGS = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}
SUPPORTED_ENCODINGS = tuple(_ENCODINGS)


class ImageDecodeError(ValueError):
    """An image that cannot be decoded, with the reason."""


def decode_image(encoding: str, height: int, width: int, step: int, data: bytes | memoryview) -> np.ndarray:
    """An Image message's fields -> (H, W, 3) uint8 RGB, honouring row padding."""
    if encoding not in _ENCODINGS:
        raise ImageDecodeError(f"unsupported image encoding '{encoding}'; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    channels, rgb = _ENCODINGS[encoding]
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"empty image {width}x{height}")
    if step < width * channels:
        raise ImageDecodeError(f"row step {step} is shorter than {width} px x {channels} channels")
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size < step * height:
        raise ImageDecodeError(f"image data has {buffer.size} bytes, {step * height} expected for {width}x{height}")
    rows = buffer[: step * height].reshape(height, step)[:, : width * channels]
    pixels = rows.reshape(height, width, channels)
    return np.ascontiguousarray(pixels[:, :, list(rgb)])


# image_transport writes e.g. "bgr8; jpeg compressed bgr8" or "rgb8; compressed png";
# older drivers just "jpeg". Depth ("compressedDepth") is not a camera image.
COMPRESSED_FORMATS = ("jpeg", "png")
COMPRESSED_SUFFIX = "/compressed"  # image_transport's topic for the compressed plugin


def decode_compressed(format: str, data: bytes | memoryview) -> np.ndarray:
    """A CompressedImage's fields -> (H, W, 3) uint8 RGB. The file format
    is read from the bytes: a jpeg or png file holds its own colour order,
    whatever encoding the camera had before compression."""
    from PIL import Image, UnidentifiedImageError

    if "compresseddepth" in format.lower():
        raise ImageDecodeError(f"'{format}' is a compressed depth image, not a camera image")
    try:
        with Image.open(io.BytesIO(bytes(data))) as image:
            if image.format is None or image.format.lower() not in ("jpeg", "png"):
                raise ImageDecodeError(f"compressed image is {image.format}, expected one of {COMPRESSED_FORMATS}")
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ImageDecodeError(f"cannot decode compressed image (format '{format}'): {error}") from error


def decode_image_message(message) -> np.ndarray:
    """An Image or a CompressedImage (rclpy's or a bag reader's) -> RGB."""
    if hasattr(message, "format"):
        return decode_compressed(message.format, message.data)
    return decode_image(message.encoding, message.height, message.width, message.step, message.data)


def encode_rgb8(frame: np.ndarray) -> tuple[int, int, int, bytes]:
    """(H, W, 3) uint8 -> (height, width, step, data) for an rgb8 Image."""
    height, width, _ = frame.shape
    return height, width, width * 3, np.ascontiguousarray(frame, dtype=np.uint8).tobytes()


def encode_compressed(frame: np.ndarray, file_format: str = "jpeg", quality: int = 90) -> tuple[str, bytes]:
    """(H, W, 3) uint8 RGB -> (format, data) for a CompressedImage, with the
    format string image_transport would write for an rgb8 camera."""
    from PIL import Image

    if file_format not in COMPRESSED_FORMATS:
        raise ValueError(f"file_format must be one of {COMPRESSED_FORMATS}, got '{file_format}'")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).save(
        buffer, format=file_format.upper(), quality=quality
    )
    kind = "jpeg compressed bgr8" if file_format == "jpeg" else "compressed png"
    return f"rgb8; {kind}", buffer.getvalue()


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (height, width, 3) uint8 by the interpolation
    System 2 applies to its input (bilinear, no antialiasing), so frames
    resized while a dataset is read match what the nodes compute at run time."""
    if frame.shape[:2] == tuple(size):
        return frame
    import torch
    import torch.nn.functional as F

    # A float copy: decoded video frames can be read-only, which torch warns about.
    pixels = torch.tensor(frame, dtype=torch.float32).permute(2, 0, 1)[None]
    resized = F.interpolate(pixels, size=tuple(size), mode="bilinear", align_corners=False)
    return resized[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
