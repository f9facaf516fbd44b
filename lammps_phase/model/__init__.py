"""The network: its geometric input features, the spatially weighted DGCNN, its folded inference form, the fused
inference path that evaluates that form, and checkpoints."""
