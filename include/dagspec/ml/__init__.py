"""The model library behind the train/evaluate/promote/score/drift stages (imported only inside tasks).

It imports nothing from the stages: what it needs of a run comes as arguments or as `data.RunData`."""
