from v10r.cli import main

main()
