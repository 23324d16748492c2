"""The model library behind the train/evaluate/promote/score/drift stages (imported only inside tasks)."""
