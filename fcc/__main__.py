from fcc.cli import main

main()
