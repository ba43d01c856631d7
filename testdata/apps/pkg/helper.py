WORD = "pkg helper"
