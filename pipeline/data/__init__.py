"""Input data: PLY / PartNetE / PartNet-Mobility readers, restricted .npy unpickling and the
synthetic shape generator. Every reader returns a normalised `cloud.LabelledCloud`."""
