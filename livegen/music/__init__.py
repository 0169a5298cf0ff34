"""Music: keys and scales, the generator interface, and the algorithmic generators."""
