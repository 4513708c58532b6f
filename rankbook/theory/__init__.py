"""The paper's theory made executable: diagonal networks, gradient flow, Algorithm 1, the toy task."""
