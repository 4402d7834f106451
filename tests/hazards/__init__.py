"""The review's hazards (H1-H13 and scheduling while atomic): each reproduced, caught by the
model, and refused by the safe layer. See docs/hazards.md."""
