echo "$GREETING from $(whoami) in $(pwd); dependencies: $(ls deps | tr '\n' ' ')"
