"""The network: the spatially weighted DGCNN, its folded fast inference path, and checkpoints."""
