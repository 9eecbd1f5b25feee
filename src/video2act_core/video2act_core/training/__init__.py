"""Training a Video2Act checkpoint, by stage; `python -m video2act_core.train`
wires the command line to these modules, in the order they run:

- `distributed`: one process or several under torchrun (rank, device,
  progress bars, gradient averaging);
- `checkpointing`: what training reads and writes: the starting weights
  (--init or a model config), the resumable state in `<out>.train/`, the
  checkpoint's metadata;
- `data`: episodes and samples to train on, instructions, and how camera
  augmentation is applied to clips;
- `stage1`: fine-tuning the video backbone on the robot's clips;
- `features`: System 2's maps of every sample, computed once and cached
  (in parts, resumable, filled once by trainings side by side);
- `stage2`: the token projections and the DiT head (System 1) on those
  maps, under DDP with several processes, resumable.
"""
