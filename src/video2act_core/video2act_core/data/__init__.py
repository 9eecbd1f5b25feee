"""Robot data: rosbag2 episodes, LeRobot datasets, image decoding and the
training dataset built from them."""
