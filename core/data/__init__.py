"""Reading people's CSV files into named columns, fast where clean, precise where not."""
