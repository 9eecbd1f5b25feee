"""What System 2 sees, drawn over the camera frame: boundary strength in
green, motion in red (each map scaled to the frame), for a debug image
topic (rqt_image_view, Foxglove) and overlay videos of evaluations."""

from __future__ import annotations

import numpy as np

# Motion below this (in the map's own units) is drawn as none: a static
# scene's exact zeros must not be stretched into full red.
MOTION_VISIBLE = 1e-6


def upsampled(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w) -> (height, width), nearest cell: the token grid stays visible."""
    rows = np.minimum(np.arange(height) * values.shape[0] // height, values.shape[0] - 1)
    columns = np.minimum(np.arange(width) * values.shape[1] // width, values.shape[1] - 1)
    return values[rows][:, columns]


def overlay(frame: np.ndarray, boundary_map: np.ndarray, motion_map: np.ndarray, strength: float = 0.7) -> np.ndarray:
    """(H, W, 3) uint8 RGB with boundaries (0..1) in green and motion
    (relative to its largest cell) in red, over a dimmed frame."""
    height, width = frame.shape[:2]
    # Squared: the strongest boundaries stand out from textured or noisy background.
    boundary = np.clip(upsampled(np.nan_to_num(boundary_map), height, width), 0.0, 1.0) ** 2
    motion = np.nan_to_num(motion_map)
    peak = float(motion.max())
    motion = upsampled(motion / peak, height, width) if peak > MOTION_VISIBLE else np.zeros((height, width))
    image = 0.6 * frame.astype(np.float32)
    image[..., 1] += strength * 255.0 * boundary
    image[..., 0] += strength * 255.0 * motion
    return np.clip(image, 0, 255).astype(np.uint8)


class OverlayVideo:
    """Overlay frames appended to a video file (PyAV, mpeg4)."""

    def __init__(self, path, fps: float):
        import av

        self.container = av.open(str(path), mode="w")
        self.stream = self.container.add_stream("mpeg4", rate=max(1, round(fps)))
        self.stream.pix_fmt = "yuv420p"
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        import av

        if self.frames == 0:
            # Even sizes for yuv420p.
            self.stream.height, self.stream.width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
        image = np.ascontiguousarray(image[: self.stream.height, : self.stream.width])
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
